"""`cacheproxy-operator`: run the kopf operator standalone (no peering objects)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import kopf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cacheproxy-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable); default: the pod's own namespace",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=None,
        help="periodic full reconcile of every CacheProxy (env CACHEPROXY_RESYNC_SECONDS)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser.parse_args(argv)


def _default_namespace() -> str | None:
    """In a pod the service account's namespace, so a namespaced install needs no flag."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    env = os.environ.get("CACHEPROXY_NAMESPACE")
    if env:
        return env
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def quiet_logs(*, verbose: bool) -> None:
    """No log line per child event (kopf's "Handler ... succeeded") or per probe (aiohttp's access
    log): at the default level the log shows what the operator changed, warnings and errors."""
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.resync_seconds is not None:
        os.environ["CACHEPROXY_RESYNC_SECONDS"] = str(args.resync_seconds)
    namespaces = args.namespace
    if not args.all_namespaces and not namespaces:
        default = _default_namespace()
        if default is None:
            print("cacheproxy-operator: give --namespace NS or --all-namespaces", file=sys.stderr)
            return 2
        namespaces = [default]
    kopf.configure(debug=args.debug, verbose=args.verbose)
    quiet_logs(verbose=args.verbose or args.debug)
    import cacheproxy_operator.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
