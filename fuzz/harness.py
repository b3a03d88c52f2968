"""Pure checks shared by the atheris targets and the corpus replay test.

A fuzz input is decoded into (max_item_size, split points, byte stream): the stream is parsed
once in one ``feed`` and once cut at the split points, and the harness asserts what must hold
for *any* client bytes:

* no exception escapes the parser;
* ``buffered`` stays bounded after every feed (the item size limit, memcached's 2048-byte
  line limit, the 1 MiB multiget bound, the binary 16 KiB read buffer);
* any split yields the same requests as one feed. The one exception is memcached's own: a
  non-get line longer than 2048 bytes that arrives in pieces is closed before its newline is
  seen, while in one piece it is parsed; then the split result must be a prefix of the one-feed
  result followed by that ``Close``.

The decoding is a plain function (no atheris FuzzedDataProvider) so the stored corpus replays
under pytest without atheris.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from cacheproxy.protocol.binary import BinaryParser
from cacheproxy.protocol.limits import LINE_LIMIT, READ_BUFFER_SIZE
from cacheproxy.protocol.requests import Close
from cacheproxy.protocol.text import GET_LINE_LIMIT, TextParser

# Small item limits reach the too-large paths with small inputs; the default one is kept too.
ITEM_SIZES = (1024, 1100, 2048, 4096, 1 << 20)
MAX_CUTS = 8


def decode(data: bytes) -> tuple[int, list[int], bytes]:
    """First byte: item size; second: number of cuts; then 2 bytes per cut; the rest: stream."""
    if len(data) < 2:
        return ITEM_SIZES[-1], [], data
    max_item = ITEM_SIZES[data[0] % len(ITEM_SIZES)]
    ncuts = data[1] % (MAX_CUTS + 1)
    head = 2 + 2 * ncuts
    stream = data[head:]
    raw = [int.from_bytes(data[2 + 2 * i: 4 + 2 * i], "big") for i in range(ncuts) if 4 + 2 * i <= len(data)]
    cuts = sorted({c % (len(stream) + 1) for c in raw})
    return max_item, cuts, stream


def pieces(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def _fields(cls: type) -> tuple[str, ...]:
    """A request class's own fields: its ``__slots__``, or what mypyc lists when it is compiled."""
    return getattr(cls, "__slots__", None) or getattr(cls, "__mypyc_attrs__", ())


def describe(requests: list) -> list[tuple]:
    """A comparable view of text requests (they define no __eq__)."""
    out = []
    for r in requests:
        fields = tuple((name, getattr(r, name)) for name in sorted(_fields(type(r))) if hasattr(r, name))
        out.append((type(r).__name__, r.command, fields))
    return out


def _feed_all(parser, chunks: list[bytes], check_bound: Callable[[object], None]) -> list:
    out: list = []
    for chunk in chunks:
        got = parser.feed(chunk)
        assert isinstance(got, list)
        out += got
        check_bound(parser)
    return out


def text_bound(max_item: int) -> Callable[[TextParser], None]:
    def check(parser: TextParser) -> None:
        held = parser.buffered
        if parser.closed:
            assert held == 0, f"closed parser still holds {held} bytes"
        elif held > max(max_item, LINE_LIMIT):
            # only a multiget line may grow past the line limit, and only to its own bound
            assert held <= GET_LINE_LIMIT, f"text parser holds {held} bytes"
            assert parser._buf.lstrip(b" ").startswith((b"get ", b"gets ")), "long non-get line held"

    return check


def check_text(data: bytes) -> None:
    max_item, cuts, stream = decode(data)
    bound = text_bound(max_item)
    whole = describe(_feed_all(TextParser(max_item), [stream], bound))
    split = describe(_feed_all(TextParser(max_item), pieces(stream, cuts), bound))
    if split == whole:
        return
    assert split and split[-1][0] == Close.__name__ and dict(split[-1][2])["reason"] == "line too long", (
        f"split {cuts} changed the requests: {split[:4]}... vs {whole[:4]}...")
    assert split[:-1] == whole[: len(split) - 1], f"split {cuts} diverged before the long-line close"


def binary_bound(max_item: int) -> Callable[[BinaryParser], None]:
    def check(parser: BinaryParser) -> None:
        held = parser.buffered
        if parser.closed:
            assert held == 0, f"closed parser still holds {held} bytes"
        assert held < max(READ_BUFFER_SIZE, max_item), f"binary parser holds {held} bytes"

    return check


def check_binary(data: bytes) -> None:
    max_item, cuts, stream = decode(data)
    bound = binary_bound(max_item)
    whole = _feed_all(BinaryParser(max_item), [stream], bound)
    split = _feed_all(BinaryParser(max_item), pieces(stream, cuts), bound)
    assert split == whole, f"split {cuts} changed the requests: {split[:3]} vs {whole[:3]}"


TARGETS: dict[str, Callable[[bytes], None]] = {"text_parser": check_text, "binary_parser": check_binary}
