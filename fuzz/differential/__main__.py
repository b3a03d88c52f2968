"""``python -m fuzz.differential``: search one layout for answers that differ from memcached's.

    python -m fuzz.differential --layout batched --minutes 5 --seed 7
    python -m fuzz.differential --layout ring --sequences 2000 --out /tmp/fuzz-ring

Exits 1 when it found a difference that is not one memcached makes on purpose.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.differential.layouts import LAYOUTS

from .search import Search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.differential", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=LAYOUTS, default="batched")
    parser.add_argument("--sequences", type=int, default=100_000, help="at most this many cases")
    parser.add_argument("--minutes", type=float, default=5.0, help="at most this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary-share", type=float, default=0.35, help="share of binary-protocol cases")
    parser.add_argument("--per-signature", type=int, default=2,
                        help="differences of one shape examined (replayed, shrunk) before it is only counted")
    parser.add_argument("--long-get-keys", action="store_true",
                        help="keys over 250 bytes in multigets too (memcached then drops queued answers)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cacheproxy-fuzz-differential",
                        help="where found-LAYOUT.json goes (default: %(default)s)")
    args = parser.parse_args(argv)
    search = Search(args.layout, args.out, args.binary_share, args.long_get_keys, args.per_signature)
    try:
        return 1 if search.run(args.seed, args.sequences, args.minutes * 60) else 0
    finally:
        search.stop()


if __name__ == "__main__":
    sys.exit(main())
