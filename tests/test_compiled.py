"""The compiled hot path (mypyc) and its pure-Python fallback: which one runs, and when.

``scripts/test.sh`` runs the suite on the compiled build (CACHEPROXY_EXPECT_BUILD=compiled) and the
proxy-behaviour tests again in pure Python (CACHEPROXY_PURE_PYTHON=1, CACHEPROXY_EXPECT_BUILD=pure),
so both pass the same tests; the first test here fails if a run did not get the build it asked for.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cacheproxy import compiled

PACKAGE_DIR = Path(compiled.HERE)
PROBE = (
    "import json, importlib, cacheproxy.compiled as c; "
    "files = [importlib.import_module('cacheproxy.' + m).__file__ for m in c.HOT]; "
    "print(json.dumps([c.COMPILED, c.DESCRIPTION, files]))"
)


def probe(pythonpath: Path, **env: str) -> tuple[bool, str, list[str]]:
    """Import every hot module in a fresh interpreter: (compiled?, description, module files)."""
    environ = {k: v for k, v in os.environ.items() if k != compiled.PURE_PYTHON_ENV} | env
    environ["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60,
                         cwd=pythonpath, check=True)
    return tuple(json.loads(out.stdout))  # type: ignore[return-value]


def built() -> bool:
    return compiled.extension_path(compiled.GROUP + "__mypyc") is not None


def test_this_run_has_the_build_it_expects():
    files = [importlib.import_module(f"cacheproxy.{m}").__file__ for m in compiled.HOT]
    want = os.environ.get("CACHEPROXY_EXPECT_BUILD")
    if want is not None:
        expect_compiled = want == "compiled"
        assert expect_compiled is compiled.COMPILED, compiled.DESCRIPTION
    suffix_ok = (lambda f: not f.endswith(".py")) if compiled.COMPILED else (lambda f: f.endswith(".py"))
    assert all(suffix_ok(f) for f in files), (compiled.DESCRIPTION, files)


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package (extension modules included, times kept) on its own path."""
    if not built():
        pytest.skip("no compiled build here (CACHEPROXY_COMPILE=0 or no C compiler)")
    shutil.copytree(PACKAGE_DIR, tmp_path / "cacheproxy", copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_built_tree_runs_compiled(package_copy: Path):
    is_compiled, description, files = probe(package_copy)
    assert is_compiled, description
    assert not any(f.endswith(".py") for f in files)


def test_pure_python_is_forced_by_the_environment(package_copy: Path):
    is_compiled, description, files = probe(package_copy, CACHEPROXY_PURE_PYTHON="1")
    assert not is_compiled and "CACHEPROXY_PURE_PYTHON=1" in description
    assert all(f.endswith(".py") for f in files)


def test_a_source_edited_after_the_build_means_pure_python_everywhere(package_copy: Path):
    """Never stale compiled code, and never a mix: one edited module sends them all to source."""
    edited = package_copy / "cacheproxy" / "protocol" / "meta.py"
    later = next(edited.parent.glob("meta.*.so")).stat().st_mtime + 60
    os.utime(edited, (later, later))
    is_compiled, description, files = probe(package_copy)
    assert not is_compiled and "protocol.meta.py edited" in description
    assert all(f.endswith(".py") for f in files)


def test_a_missing_extension_module_means_pure_python(package_copy: Path):
    for so in (package_copy / "cacheproxy" / "backends").glob("pool.*.so"):
        so.unlink()
    is_compiled, description, files = probe(package_copy)
    assert not is_compiled and "backends.pool not compiled" in description
    assert all(f.endswith(".py") for f in files)
