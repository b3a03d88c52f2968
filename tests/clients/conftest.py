"""Real client libraries as drivers: each scenario runs against memcached directly and through the
proxy in each layout (L1Only, batched, L1L2, L1L2 batched, and a ring forwarding every key), and
must observe the same results.

Both sides are reset (``flush_all`` on every level) before each test. CAS values differ between
servers, so scenarios record them through :class:`CasNames` (the order in which each value first
appeared), which keeps what a client can rely on: equal when unchanged, different after a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.differential.layouts import LayoutTarget, start_direct, start_layout

CLIENT_LAYOUTS = ("l1only", "batched", "l1l2", "l1l2-batched", "ring")


@dataclass(frozen=True)
class Pair:
    direct: str  # memcached itself, HOST:PORT
    proxy: str  # the proxy in one layout, HOST:PORT
    layout: str


class CasNames:
    """Renames CAS values by order of first appearance, so two servers' runs compare equal."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def __call__(self, cas: int | None) -> str | None:
        if cas is None:
            return None
        return self.names.setdefault(cas, f"cas{len(self.names) + 1}")


def host_port(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="session")
def _direct() -> Iterator[LayoutTarget]:
    target = start_direct()
    yield target
    target.stop()


@pytest.fixture(scope="session")
def _layouts() -> Iterator[dict[str, LayoutTarget]]:
    started: dict[str, LayoutTarget] = {}
    yield started
    for target in started.values():
        target.stop()


@pytest.fixture(params=CLIENT_LAYOUTS)
def pair(request: pytest.FixtureRequest, _direct: LayoutTarget, _layouts: dict[str, LayoutTarget]) -> Pair:
    layout = request.param
    target = _layouts.get(layout)
    if target is not None and not target.alive():
        _layouts.pop(layout).stop()
        target = None
    if target is None:
        target = _layouts[layout] = start_layout(layout)
    _direct.reset()
    target.reset()
    return Pair(_direct.addr, target.addr, layout)
