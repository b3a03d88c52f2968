"""Which modules run compiled, and the rule that picks compiled or pure Python, once per process.

``setup.py`` compiles the modules in :data:`HOT` (everything a plain request runs through) with
mypyc when it can: the same typed ``.py`` files become C extension modules, sharing one library,
``cacheproxy/_hot__mypyc``. The ``.py`` files stay next to them as the fallback, and the choice is
all or nothing, because compiled modules call each other directly, past the module objects:

- ``CACHEPROXY_PURE_PYTHON=1``: pure Python (child processes inherit the variable);
- a hot module not compiled (no C compiler at install time) or a ``.py`` edited after the build:
  pure Python, never a mix and never stale compiled code;
- otherwise compiled.

Nothing here imports the rest of cacheproxy: ``setup.py`` loads this file by path for :data:`HOT`.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location

PACKAGE = "cacheproxy"
GROUP = "_hot"  # mypyc's shared library is the module cacheproxy._hot__mypyc
HOT = (
    "listener.stream",
    "server.connection",
    "server.text",
    "protocol.text",
    "protocol.meta",
    "protocol.requests",
    "protocol.text_answers",
    "protocol.numbers",
    "handlers.plain",
    "orcas.l1only",
    "backends.connection",
    "backends.pool",
    "backends.outbox",
    "metrics.stats",
)
PURE_PYTHON_ENV = "CACHEPROXY_PURE_PYTHON"
# pip writes a wheel's files in no particular order, so a .py counts as edited after the build only
# when it is this much newer than its extension module.
STALE_AFTER = 2.0
HERE = os.path.dirname(os.path.abspath(__file__))


def source_path(module: str) -> str:
    return os.path.join(HERE, *module.split(".")) + ".py"


def extension_path(module: str) -> str | None:
    """The built extension module for MODULE (relative to the package), if there is one."""
    base = os.path.join(HERE, *module.split("."))
    for suffix in EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def decide() -> tuple[bool, str]:
    """(compiled?, a line saying which build runs and why)."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return False, f"pure Python ({PURE_PYTHON_ENV}=1)"
    if extension_path(GROUP + "__mypyc") is None:
        return False, "pure Python (not compiled)"
    for module in HOT:
        extension = extension_path(module)
        if extension is None:
            return False, f"pure Python ({module} not compiled)"
        if os.path.getmtime(source_path(module)) > os.path.getmtime(extension) + STALE_AFTER:
            return False, f"pure Python ({module}.py edited after the build; rebuild with scripts/setup.sh)"
    return True, f"compiled with mypyc ({len(HOT)} hot modules)"


class SourceFinder:
    """Meta-path finder that imports the hot modules from their ``.py`` files (pure Python)."""

    names = frozenset(f"{PACKAGE}.{module}" for module in HOT)

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in cls.names:
            return None
        return spec_from_file_location(fullname, source_path(fullname.partition(".")[2]))


COMPILED, DESCRIPTION = False, "not decided"


def install() -> None:
    """Decide once, before any hot module is imported (``cacheproxy/__init__.py`` calls this)."""
    global COMPILED, DESCRIPTION
    COMPILED, DESCRIPTION = decide()
    if not COMPILED and SourceFinder not in sys.meta_path:
        sys.meta_path.insert(0, SourceFinder)  # type: ignore[arg-type]
