"""Start and stop the real processes the tests and the bench talk to: memcached and the proxy.

Every process is started on 127.0.0.1 (or a unix socket in a temp dir), waited for by polling
its socket (never a fixed sleep), and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


def ephemeral_low() -> int:
    """The lowest port the kernel picks itself (for outgoing connections, binds to port 0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range.

    Why outside: a port is often bound a while after it is picked (a proxy restarted on its own
    port, a tier's ports named in its config before its proxies start). A port from the ephemeral
    range can meanwhile become the local end of any outgoing connection (a load generator opens
    thousands), and the bind then fails. Ports below the range are only ever taken on purpose;
    this process never hands out one port twice."""
    low = ephemeral_low()
    first = 10000 if low > 12000 else 1024
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(first, low)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {first}-{low - 1}")


def wait_connectable(addr: str, proc: subprocess.Popen | None = None, timeout: float = 15.0,
                     log: str | os.PathLike | None = None) -> None:
    """Poll until ADDR (``host:port`` or ``unix:/path``) accepts a connection; the tail of LOG goes
    into the error if PROC exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            tail = open(log, errors="replace").read()[-2000:] if log and os.path.exists(log) else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {addr} was up\n{tail}")
        try:
            connect(addr).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def connect(addr: str, timeout: float = 10.0) -> socket.socket:
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[5:])
        return s
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def terminate(popen: subprocess.Popen, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
    """SIG (SIGTERM), wait, and SIGKILL if it has not exited by then; the exit code."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    return popen.returncode


def raise_nofile_limit() -> None:
    """Soft open-files limit up to the hard one (20,000 here): 10k clients need 10k+ descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_process_setup() -> None:
    """For load-generating child processes: all the descriptors we may have, and uvloop."""
    raise_nofile_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


@dataclass
class Proc:
    """A started process and the address it serves."""

    popen: subprocess.Popen
    addr: str
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        terminate(self.popen, timeout, sig)
        log = self.extra.pop("log", None)
        if log:
            with contextlib.suppress(OSError):
                os.unlink(log)
        return self.popen.returncode


def start_memcached(
    *, port: int | None = None, unix_path: str | None = None, args: Sequence[str] = (), memory_mb: int = 64,
    env: dict[str, str] | None = None,
) -> Proc:
    """A fresh memcached from the Debian package, on 127.0.0.1:PORT or a unix socket (ENV: added to
    this process's environment)."""
    cmd = [MEMCACHED, "-U", "0", "-m", str(memory_mb), "-t", "2"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    if unix_path:
        cmd += ["-s", unix_path]
        addr = f"unix:{unix_path}"
    else:
        port = port or free_port()
        cmd += ["-l", "127.0.0.1", "-p", str(port)]
        addr = f"127.0.0.1:{port}"
    cmd += list(args)
    popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, **env} if env else None)
    wait_connectable(addr, popen)
    return Proc(popen, addr)


def start_sasl_memcached(conf: str | os.PathLike[str], user: str, password: str) -> Proc:
    """``memcached -S`` that knows USER/PASSWORD: Debian's memcached takes its users from a Cyrus
    sasldb (``SASL_CONF_PATH``), made here in the empty folder CONF with ``saslpasswd2`` (sasl2-bin,
    which ``scripts/setup.sh --test`` installs)."""
    path = os.fspath(conf)
    with open(os.path.join(path, "memcached.conf"), "w") as f:
        f.write(f"mech_list: plain\nsasldb_path: {path}/sasldb2\n")
    subprocess.run(["saslpasswd2", "-a", "memcached", "-c", "-p", "-f", os.path.join(path, "sasldb2"), user],
                   input=password.encode(), check=True, timeout=30)
    return start_memcached(args=["-S"], env={"SASL_CONF_PATH": path})


def start_proxy(
    l1: str,
    *,
    l2: str | None = None,
    args: Sequence[str] = (),
    env: dict | None = None,
    wait_ready: bool = True,
    port: int | None = None,
) -> Proc:
    """The proxy as users run it: ``python -m cacheproxy`` in its own process. Ports it picks
    itself are picked again if another process took one between the pick and the bind."""
    for _ in range(2):
        try:
            return _start_proxy(l1, l2, args, env, wait_ready, port)
        except PortTaken:
            if port is not None:
                raise
    return _start_proxy(l1, l2, args, env, wait_ready, port)


class PortTaken(RuntimeError):
    """The proxy could not bind a port: free_port() raced with another process."""


def _start_proxy(l1: str, l2: str | None, args: Sequence[str], env: dict | None, wait_ready: bool,
                 port: int | None) -> Proc:
    port, admin = port or free_port(), free_port()
    cmd = [sys.executable, "-m", "cacheproxy", "--listen", f"127.0.0.1:{port}", "--l1", l1,
           "--admin", f"127.0.0.1:{admin}"]
    if l2:
        cmd += ["--l2", l2]
    cmd += list(args)
    log = tempfile.NamedTemporaryFile(prefix="cacheproxy-", suffix=".log", delete=False)
    popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    addr = f"127.0.0.1:{port}"
    proc = Proc(popen, addr, {"admin": f"127.0.0.1:{admin}", "log": log.name})
    if wait_ready:
        try:
            wait_connectable(addr, popen)
            wait_http_ok(f"http://127.0.0.1:{admin}/readyz", popen)
        except Exception:
            output = open(log.name, errors="replace").read()  # before stop(), which removes the log
            proc.stop(signal.SIGKILL)
            if "address already in use" in output.lower():
                raise PortTaken(output) from None
            raise RuntimeError(output) from None
    return proc


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_http_ok(url: str, proc: subprocess.Popen | None = None, timeout: float = 15.0, want: int = 200) -> None:
    """Poll URL until it answers WANT."""
    deadline = time.monotonic() + timeout
    while http_status(url) != want:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered {want}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {want} within {timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def recv_until(sock: socket.socket, terminator: bytes, limit: int = 64 << 20) -> bytes:
    """Read from SOCK until the bytes received end with TERMINATOR."""
    buf = bytearray()
    while not buf.endswith(terminator):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise AssertionError("response larger than limit")
    return bytes(buf)


def talk(addr: str, payload: bytes, terminator: bytes = b"\r\n", timeout: float = 10.0) -> bytes:
    """One connection to ADDR: send PAYLOAD, read until the answer ends with TERMINATOR."""
    with connect(addr, timeout) as sock:
        sock.sendall(payload)
        return recv_until(sock, terminator)
