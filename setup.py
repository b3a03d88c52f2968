"""Build hook: pyproject.toml holds the metadata; this file adds the optional compiled hot path.

The modules named in ``service/cacheproxy/compiled.py`` are compiled with mypyc (mypy, a build
requirement from PyPI): the same type-annotated ``.py`` files become C extension modules. Without a C
compiler and Python's headers, with a type error, or with ``CACHEPROXY_COMPILE=0``, the install
still succeeds in pure Python. The ``.py`` files are installed either way: they are the fallback
(see compiled.py for when it is used).

mypyc runs only when extensions are really built, not each time pip asks for metadata.
"""

from __future__ import annotations

import os
import sys
from importlib.util import module_from_spec, spec_from_file_location

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = "service"  # where the cacheproxy package lives, relative to this file
PLACEHOLDER = "cacheproxy._hot_placeholder"  # replaced by mypyc's extensions in BuildHotPath


def compiled_module():
    """service/cacheproxy/compiled.py, loaded by path: the package itself is not importable yet."""
    spec = spec_from_file_location("_cacheproxy_compiled", os.path.join(ROOT, "cacheproxy", "compiled.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warn(message: str) -> None:
    print(f"cacheproxy: {message}; installing pure Python", file=sys.stderr)


def mypyc_extensions() -> list[Extension]:
    try:
        from mypyc.build import mypycify
    except ImportError:
        warn("mypyc is not importable")
        return []
    compiled = compiled_module()
    paths = [os.path.join(ROOT, compiled.PACKAGE, *m.split(".")) + ".py" for m in compiled.HOT]
    try:
        extensions = mypycify(paths, group_name=f"{compiled.PACKAGE}.{compiled.GROUP}", opt_level="3",
                              debug_level="0")
    except (Exception, SystemExit) as exc:  # mypy found a type error: the .py files still install
        warn(f"mypyc failed ({exc})")
        return []
    for ext in extensions:
        ext.optional = True  # no C compiler or headers: a warning, not a failed install
    return extensions


class BuildHotPath(build_ext):
    def finalize_options(self) -> None:
        exts = self.distribution.ext_modules or []
        if any(ext.name == PLACEHOLDER for ext in exts):
            self.distribution.ext_modules = mypyc_extensions()
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1


def extensions() -> list[Extension]:
    if os.environ.get("CACHEPROXY_COMPILE", "1") == "0":
        return []
    return [Extension(PLACEHOLDER, sources=[], optional=True)]


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildHotPath})
