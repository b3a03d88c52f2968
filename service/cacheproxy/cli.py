"""``cacheproxy`` / ``python -m cacheproxy``: parse flags, load config, run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import __version__, compiled
from .app import serve
from .config import load
from .kubewatch import Target
from .listener.listener import ListenError
from .process import install_event_loop, raise_nofile_limit
from .workers import run_workers

CONFIG_MAP_ENV = "CACHEPROXY_CONFIGMAP"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cacheproxy", description="memcached caching proxy (Rend-shaped, asyncio)")
    p.add_argument("--listen", help="client address HOST:PORT (default 127.0.0.1:11211)")
    p.add_argument("--l1", help="L1 memcached: HOST:PORT or unix:/path")
    p.add_argument("--l2", help="L2 memcached (extstore): HOST:PORT or unix:/path; turns on L1L2")
    p.add_argument("--admin", help="admin HTTP address HOST:PORT for /metrics, /healthz, /readyz")
    p.add_argument("--batch-listen", dest="batch_listen", help="second port served by the L1L2Batch orca")
    p.add_argument("--config", help="YAML config file; flags override it")
    p.add_argument("--orca", choices=["l1only", "l1l2"])
    p.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--max-item-size", dest="max_item_size", type=int, help="bytes; must equal L1's -I")
    p.add_argument("--max-connections", dest="max_connections", type=int)
    p.add_argument("--idle-timeout", dest="idle_timeout", type=float)
    p.add_argument("--read-timeout", dest="read_timeout", type=float)
    p.add_argument("--backend-timeout", dest="backend_timeout", type=float)
    p.add_argument("--shutdown-grace", dest="shutdown_grace", type=float)
    p.add_argument("--no-batching", dest="batching.enabled", action="store_const", const=False,
                   help="a backend connection per client (Rend's classic layout) instead of the shared pool")
    p.add_argument("--tls-cert", dest="tls_cert", metavar="FILE", help="TLS certificate chain (PEM), client port")
    p.add_argument("--tls-key", dest="tls_key", metavar="FILE", help="its private key (PEM)")
    p.add_argument("--tls-ca", dest="tls_ca", metavar="FILE", help="CA (PEM): client certificates required (mTLS)")
    p.add_argument("--plain-listen", dest="plain_listen", help="a second, plaintext client address beside TLS")
    p.add_argument("--auth-file", dest="auth_file", metavar="FILE", help="memcached -Y authfile (user:password lines)")
    p.add_argument("--ring-self", dest="ring_self",
                   help="this proxy's member name in the ring (overrides ring.self and CACHEPROXY_RING_SELF)")
    p.add_argument("--ring-peer-listen", dest="ring_peer_listen",
                   help="HOST:PORT of this proxy's peer port (overrides ring.peer_listen)")
    p.add_argument("--config-map", dest="config_map", metavar="[NAMESPACE/]NAME",
                   default=os.environ.get(CONFIG_MAP_ENV) or None,
                   help="also watch this ConfigMap through the Kubernetes API (in-cluster service account) and "
                        f"apply its config file key at once (default ${CONFIG_MAP_ENV}); --config stays the fallback")
    p.add_argument("--config-map-key", dest="config_map_key", metavar="KEY",
                   help="the ConfigMap's key holding the config (default: the --config file's name)")
    p.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"cacheproxy {__version__}, {compiled.DESCRIPTION}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "config"}
    try:
        config = load(args.config, overrides)
        if config.config_map:  # the API server's address and the service account, checked before serving
            Target.from_environment(config.config_map, config.config_map_key or os.path.basename(args.config))
    except (OSError, ValueError) as exc:
        print(f"cacheproxy: {exc}", file=sys.stderr)
        return 2
    if config.source[0]:  # SIGHUP re-reads the file once running; until then it must not kill us
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_nofile_limit()
    loop_name = install_event_loop()
    logging.getLogger("cacheproxy").info("cacheproxy %s on %s, %s", __version__, loop_name, compiled.DESCRIPTION)
    try:
        if config.workers > 1:
            return run_workers(config)
        asyncio.run(serve(config))
    except ListenError as exc:  # a port taken or not permitted: memcached's one line and exit code
        print(f"cacheproxy: {exc.strerror}", file=sys.stderr)
        return os.EX_OSERR
    return 0
