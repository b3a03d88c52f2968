"""The randomised differential fuzzer's own logic (fuzz/differential), without servers: a seed
replays the same cases, frames carry the lengths they claim, the shrinker keeps what a difference
needs, and memcached's deliberate differences are told apart from new ones."""

from __future__ import annotations

import random
import struct

from cacheproxy.protocol.binary import HEADER

from fuzz.differential.binary_gen import frame
from fuzz.differential.compare import classify, first_difference
from fuzz.differential.play import Case, frames, render
from fuzz.differential.search import random_case, shrink
from fuzz.differential.text_gen import retrieval
from fuzz.differential.vocabulary import Command


def cases(seed: int, n: int = 300) -> list[bytes]:
    rng = random.Random(seed)
    return [render(random_case(rng, 0.35, False, False).commands, [b"7"], [7]) for _ in range(n)]


def test_a_seed_replays_the_same_cases() -> None:
    assert cases(11) == cases(11)
    assert cases(11) != cases(12)


def test_multigets_keep_keys_within_250_bytes_unless_asked() -> None:
    rng = random.Random(3)
    lines = [retrieval(rng, False, long_keys=False).text for _ in range(3000)]
    keys = [k for line in lines for k in line.rstrip(b"\n").removesuffix(b"\r").split(b" ")[1:]]
    assert max(len(k) for k in keys) == 250  # a \r\r\n line end never lengthens the last key
    assert any(line.endswith(b"\r\r\n") for line in lines)


def test_cases_cover_each_protocol_and_long_meta_lines() -> None:
    rng = random.Random(5)
    drawn = [random_case(rng, 0.35, False, False) for _ in range(400)]
    assert {c.protocol for c in drawn} == {"text", "binary"}
    assert any(c.commands[0].label.startswith("long-") and len(c.commands) == 1 for c in drawn)
    assert any(c.commands[0].text.startswith((b"mg ", b"ms ", b"md ", b"ma ")) for c in drawn if c.protocol == "text")


def test_frames_carry_their_lengths_and_referenced_cas() -> None:
    d = {"op": 0x01, "key": b"k0", "extras": struct.pack(">II", 5, 0), "value": b"hello", "opaque": 9,
         "cas": "ref:2", "cas_delta": 1}
    data = frame(d, [100, 200])
    (got,) = frames(data)[0]
    assert got == (0x80, 0x01, 0, 9, 201, 0, struct.pack(">II", 5, 0), b"k0", b"hello")
    assert HEADER.unpack_from(data)[2:4] == (2, 8)  # key and extras lengths
    wrong = frame({**d, "bodylen": 14}, [])  # one byte short: the stream desyncs as a client's would
    assert HEADER.unpack_from(wrong)[6] == 14 and len(wrong) == HEADER.size + 15


def test_text_cas_references_take_the_values_seen() -> None:
    command = Command("cas", b"cas k0 0 0 1 <C2>\r\nx\r\n")
    assert command.render_text([b"11", b"22"]) == b"cas k0 0 0 1 22\r\nx\r\n"
    assert command.render_text([]) == b"cas k0 0 0 1 1000000000000002\r\nx\r\n"  # never seen: a CAS no item has


def test_shrinking_keeps_only_the_commands_a_difference_needs() -> None:
    commands = tuple(Command(f"c{i}", b"mn\r\n") for i in range(8))
    case = Case(commands, "text", True, "chunks", 1)

    def differs(candidate: Case) -> bool:  # the difference needs c2 and c5, in one step or not
        return {"c2", "c5"} <= {c.label for c in candidate.commands}

    small = shrink(case, differs)
    assert [c.label for c in small.commands] == ["c2", "c5"]
    assert (small.split, small.stepwise) == ("all", False)


def test_a_case_carrying_cas_between_steps_stays_stepwise() -> None:
    case = Case((Command("mg", b"mg k0 c\r\n"), Command("ms", b"ms k0 1 C<C1>\r\nx\r\n")), "text", True, "all", 1)
    assert shrink(case, lambda candidate: len(candidate.commands) == 2).stepwise


def test_deliberate_differences_are_classified() -> None:
    text = Case((Command("set", b"set k 0 0 1\r\nx\r\n"),), "text", False, "all", 1)
    closed = [[b"STORED\r\n", b"<closed>"]]
    assert classify(closed, [[b"STORED\r\n", b"ERROR\r\n", b"<closed>"]], text) == "drop-on-close"
    assert classify(closed, [[b"STORED\r\n", b"ERROR\r\n", b"<ok>"]], text) == "new"  # the proxy stayed open
    assert classify(closed, [[b"NOT_STORED\r\n", b"ERROR\r\n", b"<closed>"]], text) == "new"  # not memcached's

    header, value = b"VALUE k 0 500000\r\n", b"<data 500002 bytes hash 1>"
    whole = [[b"STORED\r\n", header + value, b"END\r\n", b"CLIENT_ERROR bad command line format\r\n", b"<closed>"]]
    reset = [[b"STORED\r\n", header, b"<line 127981 bytes hash 2>", b"<closed>"]]
    assert classify(reset, whole, text) == "cut-on-close"  # the reset cut memcached's value short
    assert classify([[b"STORED\r\n", b"VAL", b"<closed>"]], whole, text) == "cut-on-close"
    assert classify([[b"STORED\r\n", header, b"<closed>"]], whole, text) == "cut-on-close"
    other = [[b"STORED\r\n", b"VALUE k 0 499999\r\n", b"<line 9 bytes hash 2>", b"<closed>"]]
    assert classify(other, whole, text) == "new"  # not a prefix of the proxy's answer
    served = [[b"STORED\r\n", header, b"END\r\n", b"<closed>"]]
    assert classify(served, whole, text) == "new"  # a complete answer after the cut: not a reset
    assert classify(reset, [[*whole[0][:-1], b"<ok>"]], text) == "new"  # the proxy stayed open

    binary = Case((Command("UNKNOWN", binary={"op": 0x30, "key": b"k" * 250}),), "binary", False, "all", 1)
    unknown = b"('0x81', '0x30', '0x81', '0x0', b'0', 0, b'', b'', b'Unknown command')"
    waiting = [[b"<timeout>"]]
    assert classify(waiting, [[unknown, b"<timeout>"]], binary) == "answered-early"
    stored = b"('0x81', '0x1', '0x0', '0x0', b'<cas1>', 0, b'', b'', b'')"
    assert classify(waiting, [[stored, b"<timeout>"]], binary) == "new"  # a store answered before its data came

    answered = [[b"CLIENT_ERROR bad command line format\r\n", b"ERROR\r\n", b"<ok>"]]
    cut = [[b"CLIENT_ERROR bad command line format\r\n", b"<closed>"]]
    long_data = Case((Command("ms", b"ms k S3000\r\n" + b"v" * 3000 + b"\r\n"),), "text", False, "bytes", 1)
    assert classify(answered, cut, long_data) == "long-line"
    long_get = Case((Command("get", b"get " + b"k " * 1500 + b"\r\n"),), "text", False, "bytes", 1)
    assert classify(answered, cut, long_get) == "new"  # memcached never closes on a long get
    stored = [[b"STORED\r\n", b"<ok>"]]
    big_value = Case((Command("set", b"set k 0 0 3000\r\n" + b"v" * 3000 + b"\r\n"),), "text", False, "all", 1)
    assert classify(stored, [[b"<closed>"]], big_value) == "new"  # the proxy closing on a valid store
    assert classify(answered, cut, text) == "new"

    too_large = [[b"SERVER_ERROR object too large for cache\r\n", b"END\r\n", b"<ok>"]]
    chunked = [[b"STORED\r\n", b"VALUE k 0 1048576\r\n<data 1048578 bytes hash 1>", b"END\r\n", b"<ok>"]]
    assert classify(too_large, chunked, text, chunked=True) == "over-limit"
    assert classify(too_large, chunked, text) == "new"  # only the chunked layout stores it
    binary_too_large = [[b"('0x81', '0x1', '0x3', '0x0', b'0', 0, b'', b'', b'Too large.')", b"<ok>"]]
    binary_stored = [[b"('0x81', '0x1', '0x0', '0x0', b'<cas1>', 0, b'', b'', b'')", b"<ok>"]]
    assert classify(binary_too_large, binary_stored, binary, chunked=True) == "over-limit"
    assert classify(stored, [[b"SERVER_ERROR object too large for cache\r\n", b"<ok>"]], text, chunked=True) == "new"
    near_limit = Command("set", b"set k 0 0 1048512\r\n" + b"L" * 1048512 + b"\r\n")
    grown = Case((near_limit, Command("prepend", b"prepend k 0 0 5\r\nvvvvv\r\n")), "text", False, "all", 1)
    refused, taken = [[b"STORED\r\n", b"NOT_STORED\r\n", b"<ok>"]], [[b"STORED\r\n", b"STORED\r\n", b"<ok>"]]
    assert classify(refused, taken, grown, chunked=True) == "over-limit"  # the prepend no longer fits memcached
    small = Case((Command("set", b"set k 0 0 1\r\nx\r\n"), grown.commands[1]), "text", False, "all", 1)
    assert classify(refused, taken, small, chunked=True) == "new"  # too few bytes sent to reach the limit
    no_append = Case((near_limit, Command("add", b"add k 0 0 1\r\nx\r\n")), "text", False, "all", 1)
    assert classify(refused, taken, no_append, chunked=True) == "new"
    meta = Case((near_limit, Command("ms", b"ms k 5 MP\r\nvvvvv\r\n")), "text", False, "all", 1)
    assert classify([[b"STORED\r\n", b"NS\r\n", b"<ok>"]], [[b"STORED\r\n", b"HD\r\n", b"<ok>"]], meta,
                    chunked=True) == "over-limit"

    assert first_difference([[b"a", b"b"]], [[b"a", b"c"]]) == (0, 1, b"b", b"c")
    assert first_difference([[b"a"]], [[b"a"]]) is None
