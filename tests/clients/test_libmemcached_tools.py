"""libmemcached's own tools (Debian libmemcached-tools) as clients: ``memccapable`` (its ascii and
binary conformance tests) reports the same verdict per test through the proxy as direct, and
``memcslap`` (load: set, get, mget, in text and binary) runs through without one error."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.clients.conftest import Pair, host_port

MEMCCAPABLE = shutil.which("memccapable")
MEMCSLAP = shutil.which("memcslap")
VERDICT = re.compile(r"^(.+?)\s+\[(\w+)\]\s*$", re.M)


def capable(addr: str) -> dict[str, str]:
    host, port = host_port(addr)
    out = subprocess.run([MEMCCAPABLE, "-h", host, "-p", str(port), "-t", "5"], capture_output=True,
                         text=True, timeout=120)
    verdicts = dict(VERDICT.findall(out.stdout))
    assert verdicts, out.stdout + out.stderr
    return verdicts


@pytest.mark.skipif(MEMCCAPABLE is None, reason="libmemcached-tools is not installed (scripts/setup.sh --test)")
def test_memccapable_same_verdicts(pair: Pair) -> None:
    direct = capable(pair.direct)
    assert set(direct.values()) == {"pass"}, direct
    assert capable(pair.proxy) == direct


@pytest.mark.skipif(MEMCSLAP is None, reason="libmemcached-tools is not installed (scripts/setup.sh --test)")
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_memcslap_without_errors(pair: Pair, binary: bool) -> None:
    for test in ("set", "get", "mget"):
        cmd = [MEMCSLAP, "-s", pair.proxy, "-t", test, "-e", "2000", "-c", "2"] + (["-b"] if binary else [])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        report = out.stdout + out.stderr
        assert out.returncode == 0 and "error" not in report.lower(), report
        assert re.search(rf"Time to {test}\s+4000 keys by\s+2 threads", report), report
