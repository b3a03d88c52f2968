"""The sans-IO readers that cut a backend's byte stream back into answers, apart from any network."""

from __future__ import annotations

from cacheproxy.protocol.meta import LINES, META, READERS, TEXT_STORE, TEXT_VALUE, MetaResponse
from hypothesis import given
from hypothesis import strategies as st

VALUES = st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=30))
# (answer shape, bytes memcached sends, what the reader hands on: bytes, or a MetaResponse's raw bytes)
TEXT_VALUE_ANSWER = st.one_of(
    VALUES.map(lambda v: (TEXT_VALUE, b"VA %d f%d\r\n%b\r\n" % (len(v[1]), v[0], v[1]),
                          b"%d %d\r\n%b\r\nEND\r\n" % (v[0], len(v[1]), v[1]))),
    st.sampled_from([b"EN\r\n", b"SERVER_ERROR out of memory\r\n"]).map(lambda a: (TEXT_VALUE, a, a)),
)
STORE_ANSWER = st.sampled_from([b"STORED\r\n", b"NOT_STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n",
                                b"SERVER_ERROR out of memory storing object\r\n", b"CLIENT_ERROR bad data chunk\r\n"]
                               ).map(lambda a: (TEXT_STORE, a, a))
META_ANSWER = st.one_of(st.sampled_from([b"EN\r\n", b"HD\r\n"]),
                        st.binary(max_size=20).map(lambda v: b"VA %d f0\r\n%b\r\n" % (len(v), v))
                        ).map(lambda a: (META, a, a))
ANSWERS = st.lists(st.one_of(TEXT_VALUE_ANSWER, STORE_ANSWER, META_ANSWER), max_size=8)


def handed_on(answer: bytes | MetaResponse) -> bytes:
    return answer if isinstance(answer, bytes) else answer.raw


def read_all(shapes: list[int], chunks: list[bytes]) -> list[bytes]:
    """What BackendConnection.data_received does: keep the unread tail, read answers in order."""
    buf, out, shapes = b"", [], list(shapes)
    for chunk in chunks:
        buf += chunk
        pos = 0
        while shapes:
            parsed = READERS[shapes[0]](buf, pos)
            if parsed is None:
                break
            answer, pos = parsed
            out.append(handed_on(answer))
            shapes.pop(0)
        buf = buf[pos:]
    assert buf == b"", "bytes left over"
    return out


@given(ANSWERS, st.lists(st.integers(0, 400), max_size=6))
def test_any_split_of_the_stream_gives_the_same_answers(answers, cuts):
    stream = b"".join(wire for _, wire, _ in answers)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[i:j] for i, j in zip([0, *points], [*points, len(stream)], strict=True)]
    assert read_all([shape for shape, _, _ in answers], chunks) == [out for _, _, out in answers]


def test_a_hit_for_a_text_get_is_the_text_answer_after_the_key():
    hit = b"VA 5 f3\r\nhello\r\n"
    assert READERS[TEXT_VALUE](b"xx" + hit + b"EN\r\n", 2) == (b"3 5\r\nhello\r\nEND\r\n", 2 + len(hit))
    assert READERS[TEXT_VALUE](hit[:-1], 0) is None
    miss, pos = READERS[TEXT_VALUE](b"EN\r\n", 0)
    assert isinstance(miss, MetaResponse) and miss.code == b"EN" and pos == 4


def test_a_text_store_answer_is_passed_on_as_bytes():
    assert READERS[TEXT_STORE](b"STORED\r\nHD\r\n", 0) == (b"STORED\r\n", 8)
    assert READERS[TEXT_STORE](b"NOT_STOR", 0) is None
    error, _ = READERS[TEXT_STORE](b"SERVER_ERROR out of memory storing object\r\n", 0)
    assert isinstance(error, MetaResponse) and error.code == b"SERVER_ERROR"


def test_a_stats_answer_is_one_line_or_lines_up_to_end():
    """``stats reset`` / ``stats detail on`` answer one line; the stream after it is the next answer's."""
    for single in (b"RESET\r\n", b"OK\r\n", b"ERROR\r\n", b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"):
        assert read_all([LINES, META], [single + b"HD\r\n"]) == [single, b"HD\r\n"]
    lines = b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n"
    dump = b"PREFIX pfx get 1 hit 1 set 0 del 0\r\nEND\r\n"
    assert read_all([LINES, LINES, META], [lines + dump + b"EN\r\n"]) == [lines, dump, b"EN\r\n"]
    assert READERS[LINES](b"STAT a 1\r\nOK\r\n", 0) is None  # "OK" only ends a first line
