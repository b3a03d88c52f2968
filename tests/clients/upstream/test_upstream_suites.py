"""Client libraries' own upstream test suites, against memcached directly and through the proxy.

What is run: the test suites that ship in the PyPI sdists of three client libraries, each as a
``python -m pytest`` subprocess of this venv's interpreter (bounded by a timeout; junit XML parsed):

* pymemcache 4.0.0: ``pymemcache/test`` with ``-m "integration or benchmark"`` (the 471 unit tests
  never open a socket), ``--server/--port`` at the target, ``--count 200`` benchmark iterations. The
  library itself is the sdist's copy (pure Python).
* python-binary-memcached 0.33.0: ``test/*.py`` with a replacement ``conftest.py``
  (``shims/bmemcached_conftest.py``; the sdist has none), its fixed addresses rewritten to the target:
  ``:11211``, the "second server" ``{host}:5000`` and the unix socket ``/tmp/memcached.sock`` all
  become the target (``tests/support/procs.py`` starts memcached and the proxy on TCP; upstream
  runs a separate memcached per address), so the two-server and socket tests exercise one target
  under two names. The library is the sdist's copy (pure Python). The SASL
  tests (``test_sasl_integration.py``) run against ``memcached -S`` with a sasldb made by
  ``saslpasswd2`` (sasl2-bin, installed by ``scripts/setup.sh --test``), and through the proxy against
  a second proxy of the same layout with ``--auth-file`` in front of the same memcacheds.
* pylibmc 1.6.3: ``tests/`` (the sdist's ``conftest.py`` shim, ``shims/pylibmc_conftest.py``, points
  two hard-coded 127.0.0.1:11211 addresses at the target), then its doctests
  (``--doctest-modules --pyargs pylibmc``); flushed in between. pylibmc is a C extension, so the
  library is the venv's installed build (pyproject's test extra).

Against: memcached itself (``start_direct``), and the proxy in the layouts ``l1only`` (classic, a
backend connection per client), ``batched`` (the default) and ``l1l2`` (classic, an extstore L2),
started by ``tests/differential/layouts.py``. Every suite run gets freshly started targets, flushed
before each subprocess, and every process is stopped by PID afterwards. (``l1l2-batched`` and the
other layouts of ``layouts.py`` are left to ``tests/clients`` and ``tests/differential``: each layout
adds about 40 s here.) The module takes about 2.5 minutes on 2 cores and has no marker (none of the
repository's markers fits), so it runs with the default test command.

What is asserted: for each suite, the direct run passes at least a sane minimum of tests (so nothing
here can pass vacuously, e.g. after a collection error), and in each layout the set of tests passing
through the proxy contains every test that passes directly (the differing ids are printed). Tests
that fail directly (pymemcache's ``test_bench_delete``: an upstream bug, ``next()`` on a dict) are
not held against the proxy. The sdists are downloaded with ``pip download --no-binary :all:
--no-deps`` into ``~/.cache/cacheproxy-upstream/`` (reused when present, checked by file name and
sha256) and unpacked into a pytest temp dir per run; a failed download fails the tests.

Timing: a few upstream tests race memcached's one-second clock. pymemcache's ``test_touch`` stores
with a TTL of 1 s and touches at once, which fails whenever memcached's clock ticks in between (a
TTL of 1 s lasts from 0 to 1 s); a proxy's hop makes that a little likelier than direct. So a test
that passes directly but not through the proxy gets a second run of its suite, and only a test that
fails in both counts against the proxy: a proxy bug fails twice.

Left out, and why:

* emcache: it publishes no sdist (wheels only) and its tests are not on PyPI; CI may have no GitHub.
* pymemcache ``test_compression.py``: needs ``faker`` and ``zstd``, not in the test extra.
* python-binary-memcached ``test_tls.py``: needs ``trustme`` (not in the test extra), and starts its
  own ``memcached -Z`` on the fixed port 5001, so it never talks to the target;
  ``test_ipv6.py``: every target listens on 127.0.0.1 only (and its fixture is not in the sdist).
* Tests that skip on both sides (pymemcache's TLS tests, skipped upstream; its benchmarks of
  python-memcached, not installed; gevent variants, gevent not installed) count as not passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.differential.layouts import LAYOUT_CONFIG, LayoutTarget, start_direct, start_layout
from tests.support.procs import Proc, start_proxy, start_sasl_memcached

CACHE = Path.home() / ".cache" / "cacheproxy-upstream"
SHIMS = Path(__file__).parent / "shims"
PROXY_LAYOUTS = ("l1only", "batched", "l1l2", "ring")
RUN_TIMEOUT = 150.0  # seconds for one upstream pytest subprocess (they take 1-20 s)
TEST_TIMEOUT = 60  # pytest-timeout, per upstream test
SASL_USER, SASL_PASSWORD = "user", "password"


@dataclass(frozen=True)
class Sdist:
    project: str  # as pip knows it
    version: str
    filename: str  # as PyPI stores it
    sha256: str


SDISTS = {
    "pymemcache": Sdist("pymemcache", "4.0.0", "pymemcache-4.0.0.tar.gz",
                        "27bf9bd1bbc1e20f83633208620d56de50f14185055e49504f4f5e94e94aff94"),
    "bmemcached": Sdist("python-binary-memcached", "0.33.0", "python_binary_memcached-0.33.0.tar.gz",
                        "032241550a64f1d1b668cd858ccb4d78a471b936eee8cdf0718af15811ae7036"),
    "pylibmc": Sdist("pylibmc", "1.6.3", "pylibmc-1.6.3.tar.gz",
                     "eefa46115537abad65fbe2e032acd1b3463d9bf9e335af4b0916df4e4d3206e0"),
}

# Passed directly, observed: pymemcache 110, bmemcached 252, pylibmc 41 + 5 doctests.
MIN_DIRECT_PASSED = {"pymemcache": 100, "bmemcached": 230, "pylibmc": 44}

PYMEMCACHE_IGNORED = ("pymemcache/test/test_compression.py",)
BMEMCACHED_IGNORED = ("test_tls.py", "test_ipv6.py")
# Only parse or hash server strings, never connect: their addresses stay as upstream wrote them.
BMEMCACHED_UNTOUCHED = ("test_distributed_client_hashing.py", "test_server_parsing.py")


# -- sources -------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(sdist: Sdist) -> Path:
    """SDIST's archive in the cache, downloaded with pip when missing or not the pinned bytes."""
    path = CACHE / sdist.filename
    if path.exists() and sha256(path) == sdist.sha256:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--disable-pip-version-check", "-d", tmp, f"{sdist.project}=={sdist.version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(cmd)}` did not finish in 300 s", pytrace=False)
        got = Path(tmp) / sdist.filename
        if done.returncode != 0 or not got.exists():
            pytest.fail(f"could not download the sdist {sdist.project}=={sdist.version} from PyPI "
                        f"(`{' '.join(cmd)}` exited {done.returncode}; files: {os.listdir(tmp)})\n"
                        f"{done.stdout[-1500:]}{done.stderr[-3000:]}", pytrace=False)
        if sha256(got) != sdist.sha256:
            pytest.fail(f"{sdist.filename} from PyPI has sha256 {sha256(got)}, pinned {sdist.sha256}",
                        pytrace=False)
        os.replace(got, path)
    return path


def unpack(archive: Path, into: Path) -> Path:
    """ARCHIVE's files under INTO; the sdist's top folder."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(into)
    top = into / archive.name.removesuffix(".tar.gz")
    assert top.is_dir(), f"{archive.name} did not unpack into {top.name}/"
    return top


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each suite's unpacked sdist, in a temp dir of this run."""
    root = tmp_path_factory.mktemp("upstream-src")
    out = {name: unpack(fetch(sdist), root) for name, sdist in SDISTS.items()}
    shutil.copy(SHIMS / "pylibmc_conftest.py", out["pylibmc"] / "conftest.py")
    (out["pylibmc"] / "pytest.ini").write_text("[pytest]\n")  # its setup.cfg has no pytest section
    return out


# -- targets -------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a suite's clients connect: ``main``, and ``sasl`` for binary SASL PLAIN."""

    name: str
    main: LayoutTarget
    sasl_addr: str
    extra: list[Proc] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.main.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.main.addr.rsplit(":", 1)[1])

    @property
    def sasl_port(self) -> int:
        return int(self.sasl_addr.rsplit(":", 1)[1])

    def reset(self) -> None:
        self.main.reset()

    def stop(self) -> None:
        for proc in self.extra:
            proc.stop()
        self.main.stop()


def sasl_memcached(workdir: Path) -> Proc:
    if not shutil.which("saslpasswd2"):
        pytest.fail("saslpasswd2 not found: install sasl2-bin (scripts/setup.sh --test does)", pytrace=False)
    conf = workdir / "sasl"
    conf.mkdir()
    return start_sasl_memcached(conf, SASL_USER, SASL_PASSWORD)


def start_target(name: str, workdir: Path) -> Target:
    """Memcached itself (``memcached``) or the proxy in layout NAME, with fresh memcacheds."""
    if name == "memcached":
        main = start_direct()
        try:
            sasl = sasl_memcached(workdir)
        except BaseException:
            main.stop()
            raise
        return Target(name, main, sasl.addr, [sasl])
    main = start_layout(name)
    try:  # the same layout with --auth-file, in front of the same memcacheds
        authfile = workdir / "authfile"
        authfile.write_text(f"{SASL_USER}:{SASL_PASSWORD}\n")
        config = workdir / "sasl-proxy.yaml"
        config.write_text(LAYOUT_CONFIG[name])
        sasl = start_proxy(main.levels["l1"], l2=main.levels.get("l2"),
                           args=["--config", str(config), "--auth-file", str(authfile)])
    except BaseException:
        main.stop()
        raise
    return Target(name, main, sasl.addr, [sasl])


# -- running a suite -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One suite's results on one target, by test id."""

    passed: set[str] = field(default_factory=set)
    not_passed: dict[str, str] = field(default_factory=dict)  # id -> failed|error|skipped: message

    def add(self, xml: Path, prefix: str) -> None:
        root = ET.parse(xml).getroot()
        for case in root.iter("testcase"):
            test_id = f"{prefix}{case.get('classname')}::{case.get('name')}"
            bad = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            if bad is None:
                if test_id not in self.not_passed:
                    self.passed.add(test_id)
            else:
                self.passed.discard(test_id)
                message = (bad.get("message") or "").strip().splitlines()
                self.not_passed[test_id] = f"{bad.tag}: {message[0][:200] if message else ''}"

    def summary(self) -> str:
        kinds = [v.split(":", 1)[0] for v in self.not_passed.values()]
        return (f"{len(self.passed)} passed, {kinds.count('failure')} failed, {kinds.count('error')} errors, "
                f"{kinds.count('skipped')} skipped")


def subprocess_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH", "PYTEST_CURRENT_TEST")}
    env.update(values)
    return env


def run_pytest(cwd: Path, args: list[str], env: dict[str, str], xml: Path) -> None:
    """``python -m pytest ARGS`` in CWD (its own session: the whole group is killed on timeout)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q",
           "--timeout", str(TEST_TIMEOUT), f"--junitxml={xml}", *args]
    log = xml.with_suffix(".log")
    with open(log, "wb") as out:
        popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            code = popen.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            pytest.fail(f"{' '.join(cmd)} (in {cwd}) did not finish in {RUN_TIMEOUT:.0f} s\n"
                        f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)
    # 0: all passed; 1: some failed. Anything else (interrupted, internal or usage error, nothing
    # collected) means the suite did not really run.
    if code not in (0, 1) or not xml.exists():
        pytest.fail(f"{' '.join(cmd)} (in {cwd}) exited {code}\n{log.read_text(errors='replace')[-3000:]}",
                    pytrace=False)


def run_pymemcache(src: Path, target: Target, out: Path) -> Outcome:
    outcome = Outcome()
    xml = out / "pymemcache.xml"
    ignored = [f"--ignore={p}" for p in PYMEMCACHE_IGNORED]
    run_pytest(src, ["-m", "integration or benchmark", *ignored, "--server", target.host,
                     "--port", str(target.port), "--count", "200", "pymemcache/test"], subprocess_env(), xml)
    outcome.add(xml, "")
    return outcome


def bmemcached_copy(src: Path, target: Target, into: Path) -> Path:
    """The sdist's tests and library in INTO, their fixed addresses rewritten to TARGET."""
    into.mkdir()
    shutil.copytree(src / "bmemcached", into / "bmemcached")
    shutil.copy(SHIMS / "bmemcached_conftest.py", into / "conftest.py")
    (into / "pytest.ini").write_text("[pytest]\n")  # the rootdir: no config from the folders above
    port = target.port
    rewrites = {
        ":11211": f":{port}",
        "{host}:5000": f"localhost:{port}",
        "/tmp/memcached.sock": f"localhost:{port}",
        'Protocol(os.environ["MEMCACHED_HOST"])': f'Protocol(os.environ["MEMCACHED_HOST"] + ":{port}")',
    }
    used: set[str] = set()
    for test in sorted((src / "test").glob("test_*.py")):
        text = test.read_text()
        if test.name not in BMEMCACHED_UNTOUCHED and test.name not in BMEMCACHED_IGNORED:
            for old, new in rewrites.items():
                if old in text:
                    used.add(old)
                    text = text.replace(old, new)
            assert "11211" not in text and "5000" not in text, f"{test.name}: an address not rewritten"
        (into / test.name).write_text(text)
    assert used == set(rewrites), f"upstream's tests changed: {set(rewrites) - used} not found"
    return into


def run_bmemcached(src: Path, target: Target, out: Path) -> Outcome:
    outcome = Outcome()
    copy = bmemcached_copy(src, target, out / "bmemcached")
    xml = out / "bmemcached.xml"
    ignored = [f"--ignore={p}" for p in BMEMCACHED_IGNORED]
    env = subprocess_env(MEMCACHED_HOST=target.host, BM_SASL_PORT=str(target.sasl_port))
    run_pytest(copy, ["--rootdir", str(copy), *ignored, "."], env, xml)
    outcome.add(xml, "")
    return outcome


def run_pylibmc(src: Path, target: Target, out: Path) -> Outcome:
    outcome = Outcome()
    env = subprocess_env(MEMCACHED_HOST=target.host, MEMCACHED_PORT=str(target.port))
    run_pytest(src, ["tests"], env, out / "pylibmc.xml")
    outcome.add(out / "pylibmc.xml", "")
    target.reset()
    run_pytest(src, ["--doctest-modules", "--pyargs", "pylibmc"], env, out / "pylibmc-doctest.xml")
    outcome.add(out / "pylibmc-doctest.xml", "doctest:")
    return outcome


RUNNERS = {"pymemcache": run_pymemcache, "bmemcached": run_bmemcached, "pylibmc": run_pylibmc}


def run_suite(suite: str, target_name: str, sources: dict[str, Path], workdir: Path) -> Outcome:
    workdir.mkdir(parents=True)
    target = start_target(target_name, workdir)
    try:
        target.reset()
        outcome = RUNNERS[suite](sources[suite], target, workdir)
    finally:
        target.stop()
    print(f"{suite} vs {target_name}: {outcome.summary()}")
    return outcome


class DirectRuns:
    """Each suite's outcome against memcached itself, run on first use and kept for the module."""

    def __init__(self, sources: dict[str, Path], root: Path) -> None:
        self.sources, self.root = sources, root
        self.outcomes: dict[str, Outcome] = {}

    def __getitem__(self, suite: str) -> Outcome:
        if suite not in self.outcomes:
            self.outcomes[suite] = run_suite(suite, "memcached", self.sources, self.root / suite)
        return self.outcomes[suite]


@pytest.fixture(scope="module")
def direct(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> DirectRuns:
    return DirectRuns(sources, tmp_path_factory.mktemp("upstream-direct"))


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(RUNNERS))
def test_upstream_suite_passes_directly(suite: str, direct: DirectRuns) -> None:
    outcome = direct[suite]
    assert len(outcome.passed) >= MIN_DIRECT_PASSED[suite], (
        f"{suite} passed only {len(outcome.passed)} tests against memcached itself "
        f"(at least {MIN_DIRECT_PASSED[suite]} expected): {outcome.summary()}\n"
        + "\n".join(f"  {k}: {v}" for k, v in sorted(outcome.not_passed.items())[:60]))


@pytest.mark.parametrize("layout", PROXY_LAYOUTS)
@pytest.mark.parametrize("suite", list(RUNNERS))
def test_upstream_suite_passes_through_proxy(suite: str, layout: str, direct: DirectRuns,
                                             sources: dict[str, Path], tmp_path: Path) -> None:
    expected = direct[suite]
    assert len(expected.passed) >= MIN_DIRECT_PASSED[suite], f"{suite}: the direct run is not a baseline"
    got = run_suite(suite, layout, sources, tmp_path / suite)
    missing = sorted(expected.passed - got.passed)
    if missing:  # a second run: some upstream tests race memcached's clock (see "Timing" above)
        again = run_suite(suite, layout, sources, tmp_path / f"{suite}-again")
        missing = sorted(expected.passed - got.passed - again.passed)
    assert not missing, (
        f"{len(missing)} {suite} tests pass against memcached but not through the proxy ({layout}):\n"
        + "\n".join(f"  {t}  [{got.not_passed.get(t, 'not run')}]" for t in missing))
