"""Real binary (and text) clients: the libmemcached tools from Debian against the proxy."""

from __future__ import annotations

import subprocess

import pytest


def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("mode", ["-b", "-a"], ids=["binary", "ascii"])
def test_memccapable_conformance_suite_passes(proxy, mode):
    host, port = proxy.addr.rsplit(":", 1)
    out = run("memccapable", "-h", host, "-p", port, mode)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All tests passed" in out.stdout
    assert "[fail]" not in out.stdout


def test_memccp_and_memccat_binary_roundtrip(proxy, tmp_path):
    servers = f"--servers={proxy.addr}"
    files = []
    for i, size in enumerate([0, 1, 5000, 900_000]):
        f = tmp_path / f"file{i}.bin"
        f.write_bytes(bytes((i * 7 + j) % 251 for j in range(size)))
        files.append(f)
    cp = run("memccp", "--binary", servers, *map(str, files))
    assert cp.returncode == 0, cp.stderr
    for f in files:
        cat = subprocess.run(["memccat", "--binary", servers, f.name], capture_output=True, timeout=60)
        assert cat.returncode == 0, cat.stderr
        assert cat.stdout == f.read_bytes() + b"\n"  # memccat ends each value with a newline
    rm = run("memcrm", "--binary", servers, files[1].name)
    assert rm.returncode == 0
    missing = run("memccat", "--binary", servers, files[1].name)
    assert missing.returncode != 0


def test_memcslap_binary_load(proxy):
    out = run("memcslap", "--binary", f"--servers={proxy.addr}", "--test=set", "--concurrency=4",
              "--execute-number=500")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run("memcslap", "--binary", f"--servers={proxy.addr}", "--test=get", "--concurrency=4",
              "--execute-number=500")
    assert out.returncode == 0, out.stdout + out.stderr
