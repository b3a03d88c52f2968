#!/usr/bin/env python3
"""atheris (libFuzzer) target for one parser: ``python fuzz/fuzz_parser.py TARGET [libFuzzer args]``.

TARGET is ``text_parser`` or ``binary_parser``; the checks live in :mod:`fuzz.harness`.
``scripts/fuzz.sh`` runs both with a run count, a dictionary and the stored corpus.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["cacheproxy.protocol"]):
    import cacheproxy.protocol.binary
    import cacheproxy.protocol.numbers
    import cacheproxy.protocol.text  # noqa: F401

from fuzz.harness import TARGETS


def main() -> None:
    argv = list(sys.argv)
    if len(argv) > 1 and argv[1] in TARGETS:
        # libFuzzer re-executes argv[0] with only its own flags (merge, -jobs): pass the target on
        # through the environment, which the children inherit.
        os.environ["CACHEPROXY_FUZZ_TARGET"] = argv.pop(1)
    name = os.environ.get("CACHEPROXY_FUZZ_TARGET")
    if name not in TARGETS:
        sys.exit(f"usage: {argv[0]} {'|'.join(TARGETS)} [libFuzzer args]")
    atheris.Setup(argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
