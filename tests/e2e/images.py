"""The project's image, built from the Dockerfile with podman and loaded into the test node's containerd.

The node has no registry. The image is imported under its build tag and under every name the chart
and the CRD default to (the chart's `image.repository:appVersion`, the CRD's default proxy and
memcached images), so the README's commands run unchanged with `imagePullPolicy: IfNotPresent`. The
project's image carries memcached too, and the operator starts memcached with an explicit command.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.chart.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "image" / "build-and-run.sh"
ENV_SH = REPO / "scripts" / "image" / "env.sh"
CHART = REPO / "charts" / "cacheproxy"
CRD_FILE = REPO / "operator" / "cacheproxy_operator" / "crd" / "cacheproxies.yaml"
TAG = "localhost/cacheproxy:e2e"


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """podman with the build script's image store, runtime and ulimits (scripts/image/env.sh)."""
    command = f'. "{ENV_SH}" && $PODMAN "$@"'
    result = subprocess.run(["bash", "-c", command, "podman", *args], capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def normalized(name: str) -> str:
    """An image reference as containerd stores it: docker.io/library/x:tag for a bare x:tag."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def default_image_names() -> list[str]:
    """The chart's operator image and the CRD's default proxy and memcached images."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    names = {f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"}
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for section in ("proxy", "memcached"):
        default = spec[section]["properties"]["image"].get("default")
        if default:
            names.add(default)
    return sorted(normalized(name) for name in names)


def build_and_load(cluster: Cluster) -> list[str]:
    """Build (cached layers make a rebuild take seconds), import into the node, tag; the names loaded."""
    built = subprocess.run(["bash", str(BUILD), str(REPO), TAG], capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    with tempfile.TemporaryDirectory(prefix="cacheproxy-e2e-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), TAG)
        cluster.ctr("images", "import", str(archive))
    imported = normalized(TAG)
    names = [imported, *default_image_names()]
    for name in names[1:]:
        cluster.ctr("images", "tag", "--force", imported, name)
    return names
