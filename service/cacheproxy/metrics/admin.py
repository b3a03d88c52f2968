"""The admin HTTP server (aiohttp): /metrics, /healthz, /readyz, and /ring when a ring is configured.

It runs on its own port so that it can be exposed to Prometheus and the kubelet without
exposing the cache port (and vice versa).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from .collector import StatsCollector


def build_app(snapshot: Callable[[], dict], ready: Callable[[], tuple[bool, str]], *,
              metrics: bool = True) -> web.Application:
    """The admin routes; METRICS False leaves /metrics out (it is then served over TLS elsewhere)."""
    registry = CollectorRegistry()
    registry.register(StatsCollector(snapshot))
    ProcessCollector(registry=registry)

    async def metrics_page(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(text=why + "\n", status=200 if ok else 503)

    async def ring(request: web.Request) -> web.Response:
        view = snapshot().get("ring_view")
        if not view:
            return web.json_response({"error": "no ring configured"}, status=404)
        return web.json_response(view)

    app = web.Application()
    app.router.add_get("/ring", ring)
    if metrics:
        app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
