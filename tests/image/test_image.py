"""The container image, built for real with podman (scripts/image/build-and-run.sh), runs the proxy in
front of a host memcached: a set and a get go through it. Also: non-root UID 10001, no compiler, both
entry points present.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.support.procs import Proc, free_port, wait_connectable

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "image" / "build-and-run.sh"
ENV_SH = REPO / "scripts" / "image" / "env.sh"
TAG = "localhost/cacheproxy:test"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """podman with the same image store, runtime and ulimits as the build script (scripts/image/env.sh)."""
    command = f'. "{ENV_SH}" && $PODMAN "$@"'
    return subprocess.run(["bash", "-c", command, "podman", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    result = subprocess.run(["bash", str(BUILD), str(REPO), TAG], capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "hadolint: clean" in result.stdout
    return TAG


@pytest.fixture
def container_proxy(image: str, memcached: Proc) -> Iterator[tuple[str, str]]:
    port, admin = free_port(), free_port()
    started = podman("run", "-d", "--network", "host", "--read-only", "--cap-drop", "ALL",
                     image, "cacheproxy", "--listen", f"127.0.0.1:{port}", "--l1", memcached.addr,
                     "--admin", f"127.0.0.1:{admin}")
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        try:
            wait_connectable(f"127.0.0.1:{port}", timeout=30)
        except OSError:
            logs = podman("logs", container)
            raise AssertionError(f"proxy in container not reachable: {logs.stdout}{logs.stderr}") from None
        yield f"127.0.0.1:{port}", f"127.0.0.1:{admin}"
    finally:
        podman("rm", "-f", "-t", "10", container)


def test_proxy_from_the_image_serves_set_and_get(container_proxy: tuple[str, str], memcached: Proc) -> None:
    listen, admin = container_proxy
    host, port = listen.rsplit(":", 1)
    client = Client((host, int(port)), connect_timeout=5, timeout=5)
    try:
        value = b"from-the-image-" + str(time.time_ns()).encode()
        assert client.set("image:key", value, noreply=False)
        assert client.get("image:key") == value
        assert client.get("image:absent") is None
    finally:
        client.close()
    # The value really went to the host memcached behind the proxy.
    mc_host, mc_port = memcached.addr.rsplit(":", 1)
    direct = Client((mc_host, int(mc_port)), connect_timeout=5, timeout=5)
    try:
        assert direct.get("image:key") == value
    finally:
        direct.close()
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        assert b"cacheproxy_requests_total" in response.read()


def test_image_runs_as_fixed_non_root_user_without_compilers(image: str) -> None:
    assert podman("run", "--rm", image, "id", "-u").stdout.strip() == "10001"
    probe = podman("run", "--rm", image, "sh", "-c",
                   "for c in gcc cc g++ clang make; do command -v $c && exit 1; done; exit 0")
    assert probe.returncode == 0, f"compiler found in the final image: {probe.stdout}"
    assert podman("run", "--rm", image, "cacheproxy-operator", "--help").returncode == 0
    assert podman("run", "--rm", image, "memcached", "-h").returncode == 0
    config = podman("image", "inspect", "--format", "{{.Config.User}} {{json .Config.Cmd}}", image)
    assert config.stdout.strip() == '10001:10001 ["cacheproxy"]'
