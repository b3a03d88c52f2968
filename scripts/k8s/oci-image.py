#!/usr/bin/env python3
"""Wrap a directory of files into a one-layer OCI image archive that `ctr images import` accepts.

The test node has no registry: its sandbox (pause) image is a static binary built on the spot and
imported with this. Usage: oci-image.py OUT.tar IMAGE_NAME DIR [--entrypoint JSON]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(root: str) -> bytes:
    """The directory's contents as an uncompressed tar, entries sorted so the digest is stable."""
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(os.listdir(root)):
                tar.add(os.path.join(root, entry), arcname=entry)
        spool.seek(0)
        return spool.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("root")
    parser.add_argument("--entrypoint")
    args = parser.parse_args()

    layer = layer_tar(args.root)
    config_section: dict = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if args.entrypoint:
        config_section["Entrypoint"] = json.loads(args.entrypoint)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": config_section,
                         "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer),
                    "size": len(layer)}],
    }).encode()
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST, "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": args.name, "org.opencontainers.image.ref.name": tag},
    }]}).encode()
    with tarfile.open(args.out, "w") as out:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                           (f"blobs/sha256/{digest(config)[7:]}", config),
                           (f"blobs/sha256/{digest(manifest)[7:]}", manifest),
                           (f"blobs/sha256/{digest(layer)[7:]}", layer)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            out.addfile(info, io.BytesIO(data))
    print(f"{args.out}: {args.name} {digest(manifest)}")


if __name__ == "__main__":
    main()
