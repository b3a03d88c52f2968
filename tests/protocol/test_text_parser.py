"""The sans-IO text/meta parser, apart from any network."""

from __future__ import annotations

from cacheproxy.protocol.longline import short_number
from cacheproxy.protocol.numbers import safe_strtol, safe_strtoul, safe_strtoull
from cacheproxy.protocol.requests import (
    Arith,
    Close,
    Delete,
    Get,
    Meta,
    Passthrough,
    Quit,
    Reply,
    Store,
    TooLarge,
    Touch,
)
from cacheproxy.protocol.text import BAD_CHUNK, BAD_FORMAT, ERROR, TextParser, item_fits
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.harness import describe


def parse_all(data: bytes, max_item_size: int = 1 << 20) -> list:
    return TextParser(max_item_size).feed(data)


def parse_split(data: bytes, cuts: list[int], max_item_size: int = 1 << 20) -> list:
    parser, out, last = TextParser(max_item_size), [], 0
    for cut in sorted(set(cuts)):
        out += parser.feed(data[last:cut])
        last = cut
    return out + parser.feed(data[last:])


KEYS = st.binary(min_size=1, max_size=12).map(lambda b: bytes(97 + x % 26 for x in b))
COMMANDS = st.one_of(
    st.builds(lambda k: b"get " + k + b"\r\n", KEYS),
    st.builds(lambda ks: b"gets " + b" ".join(ks) + b"\r\n", st.lists(KEYS, min_size=1, max_size=5)),
    st.builds(lambda k, v, f: b"set %s %d 0 %d\r\n%s\r\n" % (k, f, len(v), v), KEYS, st.binary(max_size=40),
              st.integers(0, 2**32 - 1)),
    st.builds(lambda k, v: b"append %s 0 0 %d noreply\r\n%s\r\n" % (k, len(v), v), KEYS, st.binary(max_size=20)),
    st.builds(lambda k, n: b"incr %s %d\r\n" % (k, n), KEYS, st.integers(0, 2**64 - 1)),
    st.builds(lambda k: b"delete " + k + b"\r\n", KEYS),
    st.builds(lambda k: b"touch " + k + b" 10\r\n", KEYS),
    st.builds(lambda k, v: b"ms %s %d T0 F5\r\n%s\r\n" % (k, len(v), v), KEYS, st.binary(max_size=30)),
    st.builds(lambda k: b"mg " + k + b" v f t q\r\n", KEYS),
    st.just(b"mn\r\n"),
    st.just(b"version\r\n"),
    st.just(b"bogus command\r\n"),
    st.just(b"set k 0 0 3\r\nabcd\r\n"),
    st.just(b"flush_all 10 noreply\r\n"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(COMMANDS, min_size=1, max_size=12), st.lists(st.integers(0, 2000), max_size=20))
def test_any_split_of_a_stream_yields_the_same_requests(commands, cuts):
    data = b"".join(commands)
    assert describe(parse_split(data, [c % (len(data) + 1) for c in cuts])) == describe(parse_all(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000), st.lists(st.integers(0, 4000), max_size=10))
def test_random_bytes_never_raise_and_buffer_stays_bounded(data, cuts):
    parser, last = TextParser(4096), 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        parser.feed(data[last:cut])
        last = cut
        assert parser.buffered <= 4096 + 2048 + 64


def test_every_byte_fed_alone_gives_the_same_requests():
    data = (b"set k 7 0 5\r\nhello\r\nget k j\r\ngat 10 k\r\nincr n 2 noreply\r\ndelete k 0\r\n"
            b"ms k 2 b\r\nhi\r\nmd k q\r\nmn\r\nquit\r\n")
    assert describe(parse_split(data, list(range(len(data))))) == describe(parse_all(data))


def test_commands_map_to_requests():
    r = parse_all(b"get a b\r\ngets a\r\ngat 5 a\r\ngats -1 b c\r\n")
    assert [(type(x), x.keys, x.cas, x.exptime) for x in r] == [
        (Get, [b"a", b"b"], False, None), (Get, [b"a"], True, None), (Get, [b"a"], False, 5),
        (Get, [b"b", b"c"], True, -1)]
    [s] = parse_all(b"cas k 4294967297 -5 3 99 noreply\r\nabc\r\n")
    assert isinstance(s, Store) and (s.mode, s.flags, s.exptime, s.data, s.cas_unique, s.noreply) == (
        b"C", 1, -5, b"abc", 99, True)
    d, t, a, p = parse_all(b"delete k noreply\r\ntouch k 9\r\ndecr k 18446744073709551615\r\nflush_all 0\r\n")
    assert isinstance(d, Delete) and d.noreply
    assert isinstance(t, Touch) and t.exptime == 9
    assert isinstance(a, Arith) and not a.incr and a.delta == 2**64 - 1
    assert isinstance(p, Passthrough) and p.line == b"flush_all 0"
    assert isinstance(parse_all(b"quit\r\n")[0], Quit)


def test_errors_are_memcacheds():
    def answers(data: bytes) -> list[bytes]:
        return [r.data for r in parse_all(data) if isinstance(r, Reply)]

    assert answers(b"\r\n") == [ERROR]
    assert answers(b"bogus\r\n") == [ERROR]
    assert answers(b"get\r\n") == [ERROR]
    assert answers(b"get " + b"k" * 251 + b"\r\n") == [BAD_FORMAT]
    assert answers(b"set k x 0 1\r\na\r\n") == [BAD_FORMAT, ERROR]  # data line parsed as a command
    assert answers(b"set k 0 0 -1\r\n") == [BAD_FORMAT]
    assert answers(b"set k 0 0 1\r\nab\r\n") == [BAD_CHUNK, ERROR]  # "ab\r" is the block; "\n" an empty line
    assert answers(b"incr k x\r\n") == [b"CLIENT_ERROR invalid numeric delta argument\r\n"]
    assert answers(b"incr k -1\r\n") == [b"CLIENT_ERROR invalid numeric delta argument\r\n"]
    assert answers(b"delete k 1\r\n") == [
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"]
    assert answers(b"touch k x\r\n") == [b"CLIENT_ERROR invalid exptime argument\r\n"]
    assert answers(b"set k x 0 1 noreply\r\n") == []  # noreply silences even errors


def test_too_large_is_swallowed_without_buffering():
    parser = TextParser(1 << 20)
    [r] = parser.feed(b"set big 0 0 2000000000\r\n")
    assert isinstance(r, TooLarge) and r.unlink
    for _ in range(100):
        assert parser.feed(b"x" * 65536) == []
        assert parser.buffered == 0
    assert isinstance(parser.feed(b"y" * (2000000002 - 100 * 65536) + b"get k\r\n")[0], Get)
    [r] = parse_all(b"add big 0 0 1048576\r\n")
    assert isinstance(r, TooLarge) and not r.unlink


def test_item_size_limit_matches_memcached_formula():
    assert item_fits(1, 0, 1048576 - 58 + 1 - 1, 1048576)
    assert not item_fits(1, 0, 1048576 - 57, 1048576)
    assert not item_fits(1, 1, 1048576 - 61, 1048576)


def test_long_lines_close_unless_multiget():
    assert isinstance(parse_all(b"set " + b"x" * 3000)[-1], Close)
    parser = TextParser()
    assert parser.feed(b"get " + b"k " * 2000) == []
    [get] = parser.feed(b"\r\n")
    assert isinstance(get, Get) and len(get.keys) == 2000
    assert isinstance(parse_all(b"GET / HTTP/1.1\r\n")[0], Close)


def test_meta_framing():
    [m] = parse_all(b"ms k 3 T10 q\r\nabc\r\n")
    assert isinstance(m, Meta) and m.quiet and m.data == b"abc\r\n" and m.line == b"ms k 3 T10 q"
    [m, n] = parse_all(b"ms k abc\r\nmn\r\n")  # bad length: no data block follows
    assert m.data is None and n.line == b"mn"
    [m] = parse_all(b"mg k v b\r\n")
    assert m.base64 and not m.quiet


def test_numbers_follow_c():
    assert safe_strtoul(b"4294967297") == 1
    assert safe_strtoul(b"-1") is None
    assert safe_strtoul(b"+7") == 7
    assert safe_strtol(b"4294967301") == 5
    assert safe_strtol(b"2147483648") == -2147483648
    assert safe_strtol(b"12abc") is None
    assert safe_strtol(b"12\t") == 12
    assert safe_strtoull(b"18446744073709551616") is None
    assert safe_strtoull(b"-0") == 0


def test_long_meta_lines_are_forwarded_short():
    [m] = parse_all(b"mg k v T" + b"0" * 3000 + b"5 O" + b"9" * 3000 + b" M" + b"S" * 3000 + b"   f\r\n")
    assert m.line == b"mg k v T5 O" + b"9" * 39 + b" M" + b"S" * 39 + b" f"
    [m] = parse_all(b"ms k " + b"0" * 3000 + b"2 F\t" + b"1" * 30 + b"x\r\nhi\r\n")
    assert m.line == b"ms k 2 F" + b"1" * 21 + b"x" and m.data == b"hi\r\n"
    [m] = parse_all(b"md " + b"k" * 3000 + b" q\r\n")
    assert m.line == b"md " + b"k" * 251 + b" q" and m.quiet
    [v] = parse_all(b"verbosity " + b"0" * 3000 + b"1\r\n")
    assert isinstance(v, Passthrough) and v.line == b"verbosity 1"


NUMBER_TEXT = st.builds(lambda lead, sign, zeros, digits, tail: lead + sign + zeros + digits + tail,
                        st.sampled_from([b"", b"\t", b"\t" * 50, b" x"]), st.sampled_from([b"", b"+", b"-"]),
                        st.sampled_from([b"", b"0", b"0" * 5000]), st.text("0123456789", max_size=30).map(str.encode),
                        st.sampled_from([b"", b"\t", b"\tjunk", b"x", b"x" * 50, b"\r"]))


@given(NUMBER_TEXT)
def test_short_numbers_parse_as_the_long_ones(text):
    short = short_number(text)
    assert len(short) <= 45
    for parse in (safe_strtol, safe_strtoul, safe_strtoull):
        assert parse(short) == parse(text)


GET_LIKE = st.one_of(
    st.builds(lambda k: b"get " + k + b"\r\n", st.binary(min_size=0, max_size=260)),
    st.builds(lambda k, tail: b"get " + k + tail, KEYS, st.sampled_from([b"\n", b"\r\n\r\n", b" \r\n", b"\r\nget x\r\n",
                                                                          b"\r", b"", b" k2\r\n", b"\0\r\n"])),
    st.binary(max_size=40),
)


@given(GET_LIKE, st.sampled_from([b"", b"ge", b"set k 0 0 5\r\nab"]))
def test_single_get_shortcut_agrees_with_feed(data, earlier):
    """The one-whole-get shortcut answers only where feed() would give exactly Get("get", [key]),
    and never while an earlier read left something held (a partial line or data block)."""
    parser = TextParser()
    parser.feed(earlier)
    key = parser.single_get(data)
    if key is None:
        return
    assert not earlier
    assert describe(TextParser().feed(data)) == describe([Get("get", [key], False)])


def test_single_get_shortcut_takes_the_plain_get():
    assert TextParser().single_get(b"get foo:1\r\n") == b"foo:1"
    assert TextParser().single_get(b"get " + b"k" * 250 + b"\r\n") == b"k" * 250
    for data in (b"get " + b"k" * 251 + b"\r\n", b"get a b\r\n", b"get a\n", b"gets a\r\n", b"get a\r\nget b\r\n",
                 b"get \r\n", b"get a\0b\r\n"):
        assert TextParser().single_get(data) is None, data


NUMBERS = st.one_of(st.integers(0, 10**10).map(lambda n: b"%d" % n), st.sampled_from([b"", b"-1", b"+5", b"07", b"1x"]))
SET_LIKE = st.one_of(
    st.builds(lambda k, f, e, n, value, tail: b"set %b %b %b %b\r\n%b%b" % (k, f, e, n, value, tail),
              st.one_of(KEYS, st.binary(max_size=3), st.just(b"k" * 251)), NUMBERS, NUMBERS,
              st.one_of(st.integers(0, 12).map(lambda n: b"%d" % n), NUMBERS), st.binary(max_size=12),
              st.sampled_from([b"\r\n", b"", b"\n", b"\r\nget x\r\n", b"xx"])),
    st.builds(lambda k, value, mid: b"set %b 0 0 %d%b\r\n%b\r\n" % (k, len(value), mid, value),
              KEYS, st.binary(max_size=12), st.sampled_from([b"", b" noreply", b" ", b" 1 2"])),
    st.binary(max_size=40).map(lambda b: b"set " + b),
)


@settings(max_examples=400)
@given(SET_LIKE, st.sampled_from([b"", b"se", b"set k 0 0 5\r\nab"]), st.sampled_from([1 << 20, 80]))
def test_single_set_shortcut_agrees_with_feed(data, earlier, limit):
    """The one-whole-set shortcut (whose bytes are then forwarded to memcached as written) answers
    only where feed() would give exactly one Store for that key, consuming all of DATA, and never
    while an earlier read left something held."""
    parser = TextParser(limit)
    parser.feed(earlier)
    key = parser.single_set(data)
    if key is None:
        return
    assert not earlier
    fresh = TextParser(limit)
    [request] = fresh.feed(data)
    assert isinstance(request, Store) and request.command == "set" and request.key == key
    assert not request.noreply and fresh.buffered == 0


def test_single_set_shortcut_takes_the_plain_set():
    assert TextParser().single_set(b"set foo:1 5 60 3\r\nabc\r\n") == b"foo:1"
    assert TextParser().single_set(b"set k 0 0 0\r\n\r\n") == b"k"
    for data in (b"set k 0 0 3\r\nabc\r\nget k\r\n", b"set k 0 0 3 noreply\r\nabc\r\n", b"set k 0 0 3\r\nab",
                 b"set k 0 0 3\r\nabcd\r\n", b"set k -1 0 3\r\nabc\r\n", b"set  k 0 0 3\r\nabc\r\n",
                 b"add k 0 0 3\r\nabc\r\n", b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n", b"set k 0 0 3\nabc\r\n"):
        assert TextParser().single_set(data) is None, data
    assert TextParser(80).single_set(b"set k 0 0 30\r\n" + b"x" * 30 + b"\r\n") is None  # too large: not forwarded


@given(st.one_of(st.binary(max_size=12), st.text("0123456789", max_size=12).map(str.encode)))
def test_number_shortcut_agrees_with_the_c_scan(token):
    """safe_strtol/safe_strtoul take a shortcut for short plain digit strings; it must give what
    the full strtol scan (then the int32/uint32 store) gives."""
    from cacheproxy.protocol.numbers import strtol64, strtoul64

    wide = strtol64(token)
    expected = None if wide is None else ((wide & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    assert safe_strtol(token) == expected
    wide = strtoul64(token)
    assert safe_strtoul(token) == (None if wide is None else wide & 0xFFFFFFFF)
