"""Start and stop the systems under test: each target in front of its own fresh memcached.

A *target* is what the load generator talks to: ``direct`` (memcached itself), ``twemproxy``
(Debian's ``nutcracker``), ``l1only`` (the proxy, one backend connection per client) or ``batched``
(the proxy with ``batching: {enabled: true}``), ``passthrough`` (bench/passthrough.py: per-client backend
connections like l1only, but no parsing at all, the floor of that layout in Python) or ``passthrough-c``
(bench/passthrough.c: the same in C, the floor of the layout itself) or ``mcproxy`` (memcached's own
proxy, built by ``bench/build.sh memcached-proxy``, one pool of one backend); proxies take a ``-wN``
suffix for N worker processes (for mcproxy: N worker threads, ``-t N``).
Everything binds 127.0.0.1 (or a unix socket in a temp dir); every process is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the process helpers are shared with the tests

from tests.support.procs import free_port, raise_nofile_limit, terminate, wait_connectable  # noqa: E402

PROXY_KINDS = ("l1only", "batched")  # the proxy itself: these take -wN and -py
SCALED_KINDS = (*PROXY_KINDS, "mcproxy")  # these take -wN: worker processes, or mcproxy's threads
KINDS = ("direct", "twemproxy", *PROXY_KINDS, "passthrough", "passthrough-c", "mcproxy")
# A proxy target may end in -wN (N worker processes) and -py (its pure-Python fallback instead of the
# compiled hot path; see service/cacheproxy/compiled.py); mcproxy-wN runs memcached's proxy with -t N.
TARGET_RE = re.compile(r"^(direct|twemproxy|l1only|batched|passthrough-c|passthrough|mcproxy)(?:-w(\d+))?(-py)?$")


def parse_target(spec: str, default_workers: int = 1) -> tuple[str, int, bool]:
    """``l1only-w2-py`` -> (``l1only``, 2, True): kind, workers, pure Python. Workers apply to the
    proxy targets and mcproxy (its threads), pure Python to the proxy targets only."""
    match = TARGET_RE.match(spec)
    if not match:
        raise ValueError(f"unknown target {spec!r}: expected one of {', '.join(KINDS)} (proxies: -wN)")
    kind, workers = match.group(1), match.group(2)
    if workers and kind not in SCALED_KINDS:
        raise ValueError(f"{spec}: only {', '.join(SCALED_KINDS)} take -wN")
    pure = match.group(3) is not None
    if pure and kind not in PROXY_KINDS:
        raise ValueError(f"{spec}: only the proxy targets have a pure-Python variant")
    return kind, int(workers) if workers else (default_workers if kind in SCALED_KINDS else 1), pure


def bench_cache() -> Path:
    """Where bench/build.sh puts what it builds (the same environment variables)."""
    if os.environ.get("CACHEPROXY_BENCH_CACHE"):
        return Path(os.environ["CACHEPROXY_BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cacheproxy-bench"


def default_memcached_proxy() -> str | None:
    """memcached built with its proxy by ``bench/build.sh memcached-proxy``, if it has been built."""
    built = bench_cache() / "memcached-proxy" / "memcached"
    return str(built) if os.access(built, os.X_OK) else None


def build_c(name: str) -> str:
    """Path of bench/NAME.c compiled by bench/build.sh (rebuilt only when the source changed)."""
    out = subprocess.run(["sh", str(REPO / "bench" / "build.sh"), name], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def wait_unix_socket(path: Path, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"memcached exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Its own session (a Ctrl-C to the harness does not hit it first) and the raised fd limit."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_nofile_limit,
            start_new_session=True,
            env=env,
        )


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    terminate(proc, timeout)


@dataclass
class Options:
    backend: str = "unix"  # how proxies reach their memcached: unix socket (as in the pod) or tcp
    memcached_threads: int = 2
    memcached_mb: int = 256
    memcached_proxy: str | None = None  # memcached built with --enable-proxy, for the mcproxy target


@dataclass
class Stack:
    """One target and its backing memcached (for ``direct`` they are the same process)."""

    name: str
    kind: str
    workers: int
    workdir: Path
    port: int = 0
    admin: str | None = None
    backend: str = ""  # the memcached's address, for its stats
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def roots(self) -> dict[str, int]:
        """Process trees to sample: ``proxy`` (absent for direct) and ``memcached``."""
        return {role: p.pid for role, p in self.procs.items()}

    def stop(self) -> None:
        for role in ("proxy", "memcached"):
            if role in self.procs:
                stop(self.procs[role])

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.workdir.glob("*.log")))


def memcached_command(binary: str, threads: int, megabytes: int) -> list[str]:
    """memcached without UDP, allowed as many connections as the fd limit lets (at most 20,000)."""
    maxconns = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    cmd = [binary, "-U", "0", "-t", str(threads), "-m", str(megabytes), "-c", str(maxconns), "-b", "4096"]
    return [*cmd, "-u", "root"] if os.geteuid() == 0 else cmd


def start_memcached(workdir: Path, opts: Options, *, tcp: bool) -> tuple[subprocess.Popen, str, int]:
    """A fresh memcached; returns (process, address for a proxy, TCP port or 0)."""
    binary = shutil.which("memcached") or "/usr/bin/memcached"
    cmd = memcached_command(binary, opts.memcached_threads, opts.memcached_mb)
    if tcp:
        port = free_port()
        proc = spawn([*cmd, "-l", "127.0.0.1", "-p", str(port)], workdir / "memcached.log")
        wait_connectable(f"127.0.0.1:{port}", proc, 30.0, workdir / "memcached.log")
        return proc, f"127.0.0.1:{port}", port
    path = workdir / "l1.sock"
    proc = spawn([*cmd, "-s", str(path)], workdir / "memcached.log")
    wait_unix_socket(path, proc)
    return proc, f"unix:{path}", 0


def memcached_stat(addr: str, name: str, timeout: float = 2.0) -> int | None:
    """One number from memcached's ``stats`` (e.g. curr_connections), or None if it does not answer."""
    try:
        if addr.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(addr[5:])
        else:
            host, port = addr.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=timeout)
        with sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == name:
            return int(parts[2])
    return None


def twemproxy_config(listen_port: int, backend: str) -> str:
    """nutcracker's YAML: one pool, one server, its default single server connection."""
    server = backend[5:] if backend.startswith("unix:") else backend
    return (
        "cacheproxy_bench:\n"
        f"  listen: 127.0.0.1:{listen_port}\n"
        "  hash: fnv1a_64\n"
        "  distribution: ketama\n"
        "  backlog: 4096\n"
        "  preconnect: true\n"
        "  auto_eject_hosts: false\n"
        "  servers:\n"
        f"    - {server}:1\n"
    )


def mcproxy_config(backend: str) -> str:
    """memcached's proxy, Lua: one pool of one backend, every storage command (get, set, mg, ...)
    sent to it and its answer returned as it is."""
    host, port = backend.rsplit(":", 1)
    return (
        "function mcp_config_pools()\n"
        f'    return mcp.pool({{ mcp.backend("l1", "{host}", {port}) }})\n'
        "end\n"
        "\n"
        "function mcp_config_routes(pool)\n"
        "    local fgen = mcp.funcgen_new()\n"
        "    local handle = fgen:new_handle(pool)\n"
        '    fgen:ready({ n = "l1", f = function(rctx)\n'
        "        return function(r) return rctx:enqueue_and_wait(r, handle) end\n"
        "    end })\n"
        "    mcp.attach(mcp.CMD_ANY_STORAGE, fgen)\n"
        "end\n"
    )


def mcproxy_command(stack: Stack, opts: Options, config: Path) -> list[str]:
    """memcached as a proxy with -t N worker threads; each thread holds its own connection to the
    backend (the proxy's default; no separate IO thread). Its own cache stays empty."""
    if not opts.memcached_proxy:
        raise RuntimeError("mcproxy needs memcached built with its proxy: sh bench/build.sh memcached-proxy, "
                           "or pass --memcached-proxy PATH")
    cmd = memcached_command(opts.memcached_proxy, stack.workers, 64)
    return [*cmd, "-l", "127.0.0.1", "-p", str(stack.port), "-o", f"proxy_config={config}"]


def proxy_command(stack: Stack, l1: str) -> list[str]:
    stack.admin = f"127.0.0.1:{free_port()}"
    cmd = [
        sys.executable,
        "-m",
        "cacheproxy",
        "--listen",
        f"127.0.0.1:{stack.port}",
        "--l1",
        l1,
        "--admin",
        stack.admin,
        "--log-level",
        "warning",
        "--shutdown-grace",
        "2",
    ]
    if stack.workers > 1:
        cmd += ["--workers", str(stack.workers)]
    if stack.kind == "l1only":
        cmd.append("--no-batching")  # batched is the default
    return cmd


def require_compiled(spec: str, env: dict[str, str]) -> None:
    """A proxy target without -py must run the compiled hot path: a .py edited since the last build
    silently switches the proxy to pure Python (service/cacheproxy/compiled.py), which would
    measure the wrong thing."""
    probe = "import cacheproxy.compiled as c; print(int(c.COMPILED), c.DESCRIPTION)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    compiled, _, description = out.stdout.strip().partition(" ")
    if compiled != "1":
        raise RuntimeError(f"{spec} would run {description}: rebuild (scripts/setup.sh) or bench {spec}-py")


def start_stack(spec: str, workdir: Path, opts: Options, default_workers: int = 1) -> Stack:
    kind, workers, pure = parse_target(spec, default_workers)
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(spec, kind, workers, workdir)
    try:
        if kind == "direct":
            stack.procs["memcached"], stack.backend, stack.port = start_memcached(workdir, opts, tcp=True)
            return stack
        # memcached's proxy reaches its backends over TCP only (no unix sockets in mcmc_connect)
        tcp = opts.backend == "tcp" or kind == "mcproxy"
        stack.procs["memcached"], l1, _ = start_memcached(workdir, opts, tcp=tcp)
        stack.backend = l1
        stack.port = free_port()
        if kind == "twemproxy":
            config = workdir / "nutcracker.yml"
            config.write_text(twemproxy_config(stack.port, l1))
            cmd = [
                shutil.which("nutcracker") or "/usr/sbin/nutcracker",
                "-c",
                str(config),
                "-s",
                str(free_port()),
                "-a",
                "127.0.0.1",
                "-o",
                str(workdir / "nutcracker.log"),
            ]
            stack.procs["proxy"] = spawn(cmd, workdir / "proxy.log")
        elif kind == "mcproxy":
            config = workdir / "mcproxy.lua"
            config.write_text(mcproxy_config(l1))
            stack.procs["proxy"] = spawn(mcproxy_command(stack, opts, config), workdir / "proxy.log")
        elif kind in ("passthrough", "passthrough-c"):
            if not l1.startswith("unix:"):
                raise RuntimeError(f"{kind} reaches its memcached over a unix socket only")
            if kind == "passthrough":
                cmd = [sys.executable, str(REPO / "bench" / "passthrough.py"), "--listen", f"127.0.0.1:{stack.port}",
                       "--backend", l1]
            else:
                cmd = [build_c("passthrough"), "-H", "127.0.0.1", "-p", str(stack.port), "-u", l1[5:]]
            stack.procs["proxy"] = spawn(cmd, workdir / "proxy.log")
        else:
            env = dict(os.environ)
            env.pop("CACHEPROXY_PURE_PYTHON", None)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "service"), env.get("PYTHONPATH")]))
            if pure:
                env["CACHEPROXY_PURE_PYTHON"] = "1"
            else:
                require_compiled(spec, env)
            stack.procs["proxy"] = spawn(proxy_command(stack, l1), workdir / "proxy.log", env)
        wait_connectable(f"127.0.0.1:{stack.port}", stack.procs["proxy"], 30.0, workdir / "proxy.log")
        return stack
    except BaseException:
        stack.stop()
        raise


def start_stack_or_none(spec: str, workdir: Path, opts: Options, default_workers: int = 1) -> Stack | None:
    """Like start_stack, but a target that does not start is reported on stderr and skipped."""
    try:
        return start_stack(spec, workdir, opts, default_workers)
    except Exception as exc:
        print(f"  {spec}: did not start, skipped: {exc}", file=sys.stderr, flush=True)
        return None
