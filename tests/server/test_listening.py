"""The proxy's own accept loop (listener/stream.py): the addresses it listens on, a port it cannot
have, and running out of file descriptors."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support.procs import connect, free_port, recv_until, start_proxy, wait_connectable
from tests.support.wait import poll

EX_OSERR = 71  # memcached's exit code when it cannot listen


def set_get(sock: socket.socket, key: bytes) -> None:
    sock.sendall(b"set %s 0 0 2\r\nhi\r\nget %s\r\n" % (key, key))
    assert recv_until(sock, b"END\r\n") == b"STORED\r\nVALUE %s 0 2\r\nhi\r\nEND\r\n" % key


def test_unix_listener_replaces_a_stale_socket_file_and_serves(memcached):
    with tempfile.TemporaryDirectory(prefix="cacheproxy-listen-") as tmp:
        path = os.path.join(tmp, "proxy.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)  # left behind by a proxy that was killed
        stale.close()
        proxy = start_proxy(memcached.addr, args=["--listen", f"unix:{path}"], wait_ready=False)
        try:
            wait_connectable(f"unix:{path}", proxy.popen)
            with connect(f"unix:{path}") as sock:
                set_get(sock, b"over-unix")
        finally:
            assert proxy.stop() == 0


def test_a_host_name_listens_on_every_address_it_resolves_to(memcached):
    port = free_port()
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)}
    proxy = start_proxy(memcached.addr, args=["--listen", f"localhost:{port}"], port=port)
    try:
        for address in sorted(addresses):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family) as sock:
                sock.settimeout(10)
                sock.connect((address, port))
                set_get(sock, b"via-" + address.encode())
    finally:
        assert proxy.stop() == 0


def run_to_exit(args: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cacheproxy", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("which", ["listen", "admin"])
def test_a_port_taken_ends_the_proxy_with_one_line_like_memcached(memcached, which: str):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    ports = {"listen": free_port(), "admin": free_port(), which: port}
    try:
        done = run_to_exit(["--listen", f"127.0.0.1:{ports['listen']}", "--admin", f"127.0.0.1:{ports['admin']}",
                            "--l1", memcached.addr])
    finally:
        taken.close()
    assert done.returncode == EX_OSERR
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("cacheproxy:")]
    assert lines == [f"cacheproxy: failed to listen on 127.0.0.1:{port}{' (admin)' if which == 'admin' else ''}: "
                     "Address already in use"]


def test_workers_that_cannot_listen_stop_the_whole_proxy(memcached):
    taken = socket.socket()  # without SO_REUSEPORT: the workers' reuse-port sockets cannot join it
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        done = run_to_exit(["--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}",
                            "--l1", memcached.addr, "--workers", "2"])
    finally:
        taken.close()
    assert done.returncode == EX_OSERR
    assert "Traceback" not in done.stderr
    assert f"failed to listen on 127.0.0.1:{port}: Address already in use" in done.stderr


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting_then_serves_the_clients_that_waited(memcached):
    proxy = start_proxy(memcached.addr)
    try:
        first = connect(proxy.addr)
        set_get(first, b"warm")  # the backend connections are open
        in_use = len(os.listdir(f"/proc/{proxy.pid}/fd"))
        room = 20
        _, hard = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (in_use + room, hard))
        clients = [connect(proxy.addr) for _ in range(room * 2)]  # the kernel's backlog holds the rest
        for i, sock in enumerate(clients):
            sock.sendall(b"get k%d\r\n" % i)
        served = []
        for sock in clients[: room // 2]:
            assert recv_until(sock, b"END\r\n") == b"END\r\n"
            served.append(sock)
        poll(lambda: "not accepting" in open(proxy.extra["log"]).read(), timeout=15,
             what="the proxy to run out of descriptors")
        before, at = cpu_seconds(proxy.pid), time.monotonic()
        time.sleep(1.0)  # a measured interval, not a synchronisation: the proxy must not spin meanwhile
        busy = (cpu_seconds(proxy.pid) - before) / (time.monotonic() - at)
        assert busy < 0.5, f"the proxy spun at {busy:.0%} of a core while out of descriptors"
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (hard, hard))
        for sock in clients:
            sock.settimeout(15)
            if sock not in served:
                assert recv_until(sock, b"END\r\n") == b"END\r\n"
            set_get(sock, b"after")
            sock.close()
        set_get(first, b"still")
        first.close()
        wait_connectable(proxy.addr)
    finally:
        assert proxy.stop() == 0
