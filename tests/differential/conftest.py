"""Targets for the differential suite: memcached directly (A) and the proxy in front of its own
memcached (B). Both live for the whole session and are reset with ``flush_all`` before each script,
which makes them behave as fresh servers (CAS numbers aside, which the harness normalises)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.layouts import LayoutTarget, start_direct
from tests.differential.run import Target, start_target


@pytest.fixture(scope="session")
def direct_target() -> Iterator[Target]:
    target = start_target("memcached")
    yield target
    target.stop()


@pytest.fixture(scope="session")
def _proxy_holder() -> Iterator[dict[str, Target]]:
    holder: dict[str, Target] = {}
    yield holder
    for target in holder.values():
        target.stop()


@pytest.fixture(params=["proxy", "proxy-unix", "ring"], ids=["tcp-backend", "unix-backend", "ring"])
def proxy_target(request: pytest.FixtureRequest, _proxy_holder: dict[str, Target]) -> Target:
    """The proxy, reaching its memcached over TCP or over a unix socket (as in pods), or forwarding
    every key to the members of a ring. Restarted if an earlier script killed it (that script fails
    on its own)."""
    kind = request.param
    if kind in _proxy_holder and not _proxy_holder[kind].alive():
        _proxy_holder.pop(kind).stop()
    if kind not in _proxy_holder:
        _proxy_holder[kind] = start_target(kind)
    return _proxy_holder[kind]


# The layout matrix (test_matrix.py, test_binary_matrix.py): memcached alone, and the proxy in
# each layout, started on first use and kept for the module.
@pytest.fixture(scope="module")
def direct() -> Iterator[LayoutTarget]:
    target = start_direct()
    yield target
    target.stop()


@pytest.fixture(scope="module")
def layouts() -> Iterator[dict[str, LayoutTarget]]:
    started: dict[str, LayoutTarget] = {}
    yield started
    for target in started.values():
        target.stop()
