"""The differential corpus: small named byte scripts covering memcached 1.6.18's text and meta protocols.

Each script runs on a fresh connection against a server that was just reset (``flush_all``), so
scripts are independent. Reply shapes (see ``harness.SHAPES``): ``L`` one unit, ``E`` until END,
``M`` until MN, ``C`` until the server closes. Quiet/noreply steps are followed by ``mn`` and read
until ``MN``. ``<C1>`` in a sent line is replaced by the first CAS value this target emitted.

TTLs are multiples of 10 so that the bucketing of ``t<N>`` in the harness absorbs a clock tick.
"""

from __future__ import annotations

from tests.differential.harness import Script, Step

MAX_VALUE_K = 1048516  # largest value memcached -I 1m stores under a 1-byte key with flags 0
KEY250 = b"k" * 250
KEY251 = b"k" * 251


def one(send: bytes, n: int = 1, conn: int = 0) -> Step:
    """N single-unit replies (a line, or a VALUE/VA line with its data)."""
    return Step(send, "L" if n == 1 else f"L{n}", conn=conn)


def get(send: bytes, conn: int = 0) -> Step:
    """A retrieval: units until END (or an error line)."""
    return Step(send, "E", conn=conn)


def quiet(send: bytes, conn: int = 0) -> Step:
    """Quiet/noreply commands, then ``mn``: read everything up to MN."""
    return Step(send + b"mn\r\n", "M", conn=conn)


def closes(send: bytes, conn: int = 0) -> Step:
    """The server is expected to close the connection (replies before the close are kept)."""
    return Step(send, "C", conn=conn)


def shaped(send: bytes, expect: str, regex: str) -> Step:
    """Not compared byte for byte (the proxy may answer it itself); only its shape is checked."""
    return Step(send, expect, compare=False, shape=regex)


def setcmd(key: bytes, value: bytes, flags: int = 0, exptime: int = 0, cmd: bytes = b"set",
           extra: bytes = b"") -> bytes:
    return b"%s %s %d %d %d%s\r\n%s\r\n" % (cmd, key, flags, exptime, len(value), extra, value)


SCRIPTS: list[Script] = []


def script(name: str, *steps: Step, doc: str = "") -> None:
    SCRIPTS.append(Script(name, tuple(steps), doc))


# ---------------------------------------------------------------- retrieval
script("get_miss", get(b"get a\r\n"))
script("get_hit", one(setcmd(b"a", b"hello", 5)), get(b"get a\r\n"))
script("get_multi_mixed", one(setcmd(b"a", b"1")), one(setcmd(b"c", b"333", 7)),
       get(b"get a b c d a\r\n"))
script("get_multi_many_keys", one(setcmd(b"k7", b"7")),
       get(b"get " + b" ".join(b"k%d" % i for i in range(60)) + b"\r\n"),
       doc="more than MAX_TOKENS (24) keys: memcached re-tokenises")
script("get_extra_spaces", one(setcmd(b"a", b"1")), get(b"get   a    a  \r\n"), get(b"  get a\r\n"))
script("gets_cas_stable", one(setcmd(b"a", b"1")), one(setcmd(b"b", b"2")),
       get(b"gets a b\r\n"), get(b"gets b a\r\n"), get(b"get a\r\n"))
script("gets_cas_changes_on_set", one(setcmd(b"a", b"1")), get(b"gets a\r\n"),
       one(setcmd(b"a", b"2")), get(b"gets a\r\n"))
script("gat_hit_miss", one(setcmd(b"a", b"xy", 3)), get(b"gat 100 a b\r\n"), get(b"gats 100 a\r\n"),
       one(b"mg a t v\r\n"))
script("gat_errors", get(b"gat abc a\r\n"), one(b"gats\r\n"), get(b"gat 100\r\n"), one(b"gat\r\n"),
       get(b"gat -1 a\r\n"))
script("gat_negative_expires", one(setcmd(b"a", b"1")), get(b"gat -1 a\r\n"), get(b"get a\r\n"))
script("get_key_250", one(setcmd(KEY250, b"v")), get(b"get " + KEY250 + b"\r\n"))
script("get_key_251", get(b"get " + KEY251 + b"\r\n"))
script("get_key_251_in_multiget_drops_hits", one(setcmd(b"a", b"1")),
       get(b"get a " + KEY251 + b" a\r\n"), get(b"gets a\r\n"))
script("get_no_key", one(b"get\r\n"), one(b"get \r\n"), one(b"gets\r\n"))
script("get_uppercase_is_unknown", one(b"GET a\r\n"), one(b"Get a\r\n"))
script("bget_alias", one(setcmd(b"a", b"1")), get(b"bget a\r\n"))
script("value_with_protocol_bytes", one(setcmd(b"a", b"END\r\nVALUE b 0 1\r\nx")), get(b"get a\r\n"),
       one(b"mg a v\r\n"))
script("value_binary_all_bytes", one(setcmd(b"bin", bytes(range(256)) * 4, 42)), get(b"gets bin\r\n"),
       one(b"mg bin v f s\r\n"))

# ---------------------------------------------------------------- storage
script("set_basic_flags", one(setcmd(b"a", b"v", 0)), get(b"get a\r\n"),
       one(setcmd(b"a", b"v", 4294967295)), get(b"get a\r\n"))
script("set_flags_truncated_to_32_bits", one(setcmd(b"a", b"v", 4294967296)), get(b"get a\r\n"),
       one(b"set a +5 0 1\r\nx\r\n"), get(b"get a\r\n"))
script("set_value_empty", one(setcmd(b"e", b"")), get(b"get e\r\n"), one(b"mg e v s\r\n"))
script("set_value_one_byte", one(setcmd(b"e", b"1")), get(b"get e\r\n"))
script("set_overwrite", one(setcmd(b"a", b"one", 1)), one(setcmd(b"a", b"two", 2)), get(b"get a\r\n"))
script("set_negative_exptime_expires", one(setcmd(b"a", b"1", exptime=-1)), get(b"get a\r\n"))
script("set_absolute_exptime_in_past", one(setcmd(b"a", b"1", exptime=2592001)), get(b"get a\r\n"))
script("set_exptime_future_visible", one(setcmd(b"a", b"1", exptime=1000)), get(b"get a\r\n"),
       one(b"mg a t\r\n"))
script("set_absolute_exptime_future", one(setcmd(b"a", b"1", exptime=2000000000)), get(b"get a\r\n"))
script("add_paths", one(setcmd(b"a", b"1", cmd=b"add")), one(setcmd(b"a", b"2", cmd=b"add")),
       get(b"get a\r\n"))
script("replace_paths", one(setcmd(b"a", b"1", cmd=b"replace")), get(b"get a\r\n"),
       one(setcmd(b"a", b"1")), one(setcmd(b"a", b"2", 9, cmd=b"replace")), get(b"get a\r\n"))
script("append_prepend_paths", one(setcmd(b"a", b"x", cmd=b"append")),
       one(setcmd(b"a", b"x", cmd=b"prepend")), one(setcmd(b"a", b"mid", 3)),
       one(setcmd(b"a", b"_end", 7, cmd=b"append")), one(setcmd(b"a", b"start_", 8, cmd=b"prepend")),
       get(b"gets a\r\n"))
script("append_to_empty", one(setcmd(b"a", b"")), one(setcmd(b"a", b"z", cmd=b"append")), get(b"get a\r\n"))
script("cas_paths", one(setcmd(b"a", b"x", cmd=b"cas", extra=b" 1")),
       one(setcmd(b"a", b"1")), get(b"gets a\r\n"),
       one(b"cas a 0 0 1 <C1>\r\n2\r\n"), get(b"gets a\r\n"),
       one(b"cas a 0 0 1 <C1>\r\n3\r\n"), get(b"gets a\r\n"),
       one(b"cas a 0 0 1 99999999999\r\n4\r\n"), get(b"get a\r\n"))
script("cas_bad_unique", one(setcmd(b"a", b"1")), one(b"cas a 0 0 1 abc\r\nx\r\n", 2),
       one(b"cas a 0 0 1 -1\r\nx\r\n", 2), one(b"cas a 0 0 1\r\nx\r\n", 2))
script("cas_noreply", one(setcmd(b"a", b"1")), get(b"gets a\r\n"),
       quiet(b"cas a 0 0 1 <C1> noreply\r\n2\r\ncas a 0 0 1 <C1> noreply\r\n3\r\n"
             b"cas zz 0 0 1 1 noreply\r\n3\r\n"), get(b"get a zz\r\n"))
script("cas_two_clients", one(setcmd(b"a", b"1")), get(b"gets a\r\n"),
       one(setcmd(b"a", b"other"), conn=1), one(b"cas a 0 0 1 <C1>\r\n2\r\n"), get(b"get a\r\n"))
script("storage_bad_numbers", one(b"set a abc 0 1\r\nx\r\n", 2), one(b"set a 0 abc 1\r\nx\r\n", 2),
       one(b"set a 0 0 abc\r\nx\r\n", 2), one(b"set a -1 0 1\r\nx\r\n", 2),
       one(b"set a 1a 0 1\r\nx\r\n", 2), one(b"set a 0 0x10 0 1\r\nx\r\n", 2), get(b"get a\r\n"))
script("storage_negative_length", one(b"set a 0 0 -1\r\n"), one(b"set a 0 0 -1\r\nfoo\r\n", 2))
script("storage_huge_lengths", one(b"set a 0 0 2147483646\r\n"), one(b"set a 0 0 2147483648\r\nx\r\n", 2),
       one(b"set a 0 0 4294967297\r\nx\r\n"), get(b"get a\r\n"),
       doc="the length is parsed as int32: 2^32+1 means 1")
script("storage_length_wraps_to_zero", one(b"set a 0 0 4294967296\r\nx\r\n", 2), get(b"get a\r\n"))
script("storage_wrong_token_counts", one(b"set a 0 0\r\n"), one(b"set a 0 0 1 noreply extra\r\nx\r\n", 2),
       one(b"set\r\n"), one(b"add a\r\n"), one(b"cas a 0 0 1 2 noreply extra\r\nx\r\n", 2))
script("storage_leading_zero_and_plus_length", one(b"set a 0 0 01\r\nx\r\n"), one(b"set b 0 0 +1\r\ny\r\n"),
       get(b"get a b\r\n"))
script("storage_key_250", one(setcmd(KEY250, b"v", 1)), get(b"get " + KEY250 + b"\r\n"))
script("storage_key_251_no_swallow", one(setcmd(KEY251, b"v"), 2), get(b"get a\r\n"))
script("storage_key_251_data_is_command", one(setcmd(KEY251, b"get a")), get(b""),
       doc="the data block of a rejected set is parsed as a command")
script("storage_long_key_3000", one(setcmd(b"k" * 3000, b"x"), 2))

# ---------------------------------------------------------------- bad data chunks
script("bad_chunk_longer", one(setcmd(b"a", b"old")), one(b"set a 0 0 1\r\nxy\r\n", 2),
       get(b"get a\r\n"))
script("bad_chunk_bare_lf", one(b"set a 0 0 1\r\nx\nget a\r\n", 2), get(b"get a\r\n"))
script("bad_chunk_then_pipeline", one(b"set a 0 0 3\r\nabcde\r\nset b 0 0 1\r\nb\r\n", 3),
       get(b"get a b\r\n"))
script("bad_chunk_noreply_silent", quiet(b"set a 0 0 1 noreply\r\nxy\r\n"), get(b"get a\r\n"))
script("bad_chunk_bare_lf_command_line", one(b"set a 0 0 1\nx\r\n"), get(b"get a\n"))
script("bad_chunk_cr_only", one(b"set a 0 0 1\r\nx\r\r\n", 2), get(b"get a\r\n"))

# ---------------------------------------------------------------- large values and the size limit
for size in (100, 1000, 16384, 65536, 100000, 500000, MAX_VALUE_K):
    script(f"large_value_{size}", one(setcmd(b"k", b"%" * (size - 1) + b"!")), get(b"get k\r\n"),
           one(b"mg k s v\r\n"))
script("large_value_limit_flags_nonzero",
       one(setcmd(b"k", b"a" * (MAX_VALUE_K - 4), 1)), one(setcmd(b"k", b"a" * (MAX_VALUE_K - 3), 1)),
       get(b"get k\r\n"))
script("large_value_limit_key250", one(setcmd(KEY250, b"a" * (MAX_VALUE_K + 1 - 250))),
       one(setcmd(KEY250, b"a" * (MAX_VALUE_K + 2 - 250))), one(b"mg " + KEY250 + b" s\r\n"))
script("too_large_just_over", one(setcmd(b"k", b"a" * (MAX_VALUE_K + 1))), get(b"get k\r\n"))
script("too_large_set_deletes_old", one(setcmd(b"k", b"old")), one(setcmd(b"k", b"a" * 2000000)),
       get(b"get k\r\n"))
script("too_large_add_keeps_old", one(setcmd(b"k", b"old")), one(setcmd(b"k", b"a" * 2000000, cmd=b"add")),
       one(setcmd(b"k", b"a" * 2000000, cmd=b"replace")), one(setcmd(b"k", b"a" * 2000000, cmd=b"append")),
       get(b"get k\r\n"))
script("too_large_noreply_silent_but_deletes", one(setcmd(b"k", b"old")),
       quiet(setcmd(b"k", b"a" * 2000000, extra=b" noreply")), get(b"get k\r\n"))
script("too_large_swallow_unchecked", one(b"set k 0 0 2000000\r\n" + b"a" * 2000000 + b"XXget k\r\n", 2),
       doc="the swallowed block need not end in CRLF")
script("too_large_then_pipeline", one(setcmd(b"big", b"b" * 3000000) + setcmd(b"s", b"small"), 2),
       get(b"get big s\r\n"))
script("too_large_streamed_in_parts", Step(b"set k 0 0 3000000\r\n" + b"a" * 1000000, ""),
       Step(b"b" * 1000000, ""), one(b"c" * 1000000 + b"\r\n" + setcmd(b"k", b"small"), 2),
       get(b"get k\r\n"), doc="a too-large value sent in pieces is swallowed as it streams")

# ---------------------------------------------------------------- incr / decr
script("incr_decr_basic", one(setcmd(b"n", b"10", 5)), one(b"incr n 5\r\n"), one(b"decr n 3\r\n"),
       get(b"gets n\r\n"))
script("incr_miss", one(b"incr n 1\r\n"), one(b"decr n 1\r\n"))
script("incr_non_numeric", one(setcmd(b"a", b"x")), one(b"incr a 1\r\n"), one(b"decr a 1\r\n"),
       one(setcmd(b"a", b"-1")), one(b"incr a 1\r\n"), one(setcmd(b"a", b"")), one(b"incr a 1\r\n"))
script("incr_invalid_delta", one(setcmd(b"n", b"1")), one(b"incr n abc\r\n"), one(b"incr n -1\r\n"),
       one(b"incr n 18446744073709551616\r\n"), one(b"decr n 1.5\r\n"), one(b"incr n\r\n"))
script("numbers_thousands_of_digits", one(setcmd(b"n", b"5")),
       one(b"incr n " + b"1" * 4301 + b"\r\n"), one(b"incr n " + b"0" * 4301 + b"1\r\n"),
       one(b"touch n " + b"0" * 4301 + b"\r\n"), one(b"set m " + b"0" * 5000 + b"7 0 1\r\nx\r\n"),
       one(b"ms m " + b"0" * 4301 + b"1\r\ny\r\n"), get(b"gets m n\r\n"),
       doc="C parses any number of digits: leading zeros are nothing, more than 20 others overflow")
script("incr_wrap_64", one(setcmd(b"n", b"18446744073709551615")), one(b"incr n 1\r\n"),
       one(setcmd(b"m", b"10")), one(b"incr m 18446744073709551615\r\n"), get(b"get n m\r\n"))
script("decr_underflow_clamps", one(setcmd(b"n", b"5")), one(b"decr n 6\r\n"), one(b"decr n 1\r\n"),
       one(b"decr n 18446744073709551615\r\n"))
script("incr_shrinks_pads_with_spaces", one(setcmd(b"n", b"100")), one(b"decr n 1\r\n"),
       get(b"get n\r\n"), one(setcmd(b"o", b"010")), one(b"incr o 1\r\n"), get(b"get o\r\n"))
script("incr_grows", one(setcmd(b"n", b"99")), one(b"incr n 1\r\n"), get(b"get n\r\n"))
script("incr_whitespace_value", one(setcmd(b"n", b" 12")), one(b"incr n 1\r\n"),
       one(setcmd(b"m", b"12 ")), one(b"incr m 1\r\n"), get(b"get n m\r\n"))
script("incr_noreply", one(setcmd(b"n", b"5")),
       quiet(b"incr n 1 noreply\r\ndecr n 2 noreply\r\nincr missing 1 noreply\r\nincr n abc noreply\r\n"),
       get(b"get n\r\n"))
script("incr_extra_token_not_noreply", one(setcmd(b"n", b"1")), one(b"incr n 1 2\r\n"),
       one(b"decr n 1 noreply x\r\n"))
script("incr_changes_cas", one(setcmd(b"n", b"1")), get(b"gets n\r\n"), one(b"incr n 1\r\n"),
       get(b"gets n\r\n"))
script("incr_key_251", one(b"incr " + KEY251 + b" 1\r\n"))

# ---------------------------------------------------------------- delete / touch
script("delete_paths", one(b"delete a\r\n"), one(setcmd(b"a", b"1")), one(b"delete a\r\n"),
       one(b"delete a\r\n"), get(b"get a\r\n"))
script("delete_legacy_zero", one(setcmd(b"a", b"1")), one(b"delete a 0\r\n"), one(b"delete a 1\r\n"),
       one(b"delete a noreply 0\r\n"), one(b"delete a 0 0\r\n"), one(b"delete\r\n"),
       one(b"delete a 0 noreply x\r\n"))
script("delete_noreply", one(setcmd(b"a", b"1")), quiet(b"delete a noreply\r\ndelete a 0 noreply\r\n"),
       get(b"get a\r\n"))
script("delete_key_251", one(b"delete " + KEY251 + b"\r\n"))
script("touch_paths", one(b"touch a 100\r\n"), one(setcmd(b"a", b"1")), one(b"touch a 100\r\n"),
       one(b"mg a t\r\n"), one(b"touch a abc\r\n"), one(b"touch a\r\n"), quiet(b"touch a 200 noreply\r\n"),
       one(b"mg a t\r\n"), one(b"touch a -1\r\n"), get(b"get a\r\n"))
script("touch_key_251", one(b"touch " + KEY251 + b" 10\r\n"))

# ---------------------------------------------------------------- flush_all / verbosity
script("flush_all_now", one(setcmd(b"a", b"1")), one(b"flush_all\r\n"), get(b"get a\r\n"),
       one(setcmd(b"a", b"2", cmd=b"add")), get(b"get a\r\n"))
script("flush_all_forms", one(b"flush_all 0\r\n"), one(b"flush_all -1\r\n"), one(b"flush_all abc\r\n"),
       one(b"flush_all 0 2\r\n"), one(b"flush_all 1 2 3\r\n"), quiet(b"flush_all noreply\r\n"))
script("flush_all_delayed_keeps_items", one(setcmd(b"a", b"1")), one(b"flush_all 1000\r\n"),
       get(b"get a\r\n"), quiet(b"flush_all 900 noreply\r\n"), get(b"get a\r\n"))
script("verbosity_forms", one(b"verbosity 0\r\n"), one(b"verbosity\r\n"), one(b"verbosity abc\r\n"),
       one(b"verbosity 0 0\r\n"), one(b"verbosity 0 1 2\r\n"), quiet(b"verbosity 0 noreply\r\n"))

# ---------------------------------------------------------------- noreply on every storage command
script("noreply_storage_all", quiet(setcmd(b"a", b"1", extra=b" noreply") + setcmd(b"a", b"2", cmd=b"add",
       extra=b" noreply") + setcmd(b"b", b"3", cmd=b"add", extra=b" noreply") + setcmd(
       b"a", b"4", cmd=b"replace", extra=b" noreply") + setcmd(b"c", b"5", cmd=b"replace",
       extra=b" noreply") + setcmd(b"a", b"6", cmd=b"append", extra=b" noreply") + setcmd(
       b"a", b"7", cmd=b"prepend", extra=b" noreply")), get(b"get a b c\r\n"))
script("noreply_error_still_unswallowed", quiet(setcmd(KEY251, b"x", extra=b" noreply")),
       quiet(b"set a 0 0 -1 noreply\r\nfoo\r\n"))
script("noreply_not_last_token", one(b"set a 0 0 1 noreply 5\r\nx\r\n", 2))

# ---------------------------------------------------------------- framing, pipelining, errors
script("empty_line", one(b"\r\n"), one(b"   \r\n"), one(b"\n"))
script("unknown_commands", one(b"foo\r\n"), one(b"foo bar baz\r\n"), one(b"x\r\n"), one(b"gett a\r\n"),
       one(b"sets a 0 0 1\r\n"), one(b"mx a\r\n"), one(b"m\r\n"))
script("unknown_http_closes", closes(b"GET / HTTP/1.1\r\n"))
script("too_many_tokens",
       one(b"set a 0 0 1 " + b" ".join(b"%d" % i for i in range(2, 25)) + b"\r\nx\r\n", 2),
       one(b"incr a 1 2 3\r\n"), one(b"touch a 1 2 3\r\n"))
script("pipeline_one_write",
       Step(setcmd(b"a", b"1") + b"get a\r\nincr a 4\r\n" + setcmd(b"b", b"bb", cmd=b"add")
            + b"gets a b\r\ndelete a\r\nget a\r\nmg b v\r\nmn\r\n", "L E L L E L E L L"))
script("pipeline_mixed_text_meta",
       Step(b"ms a 1 T0\r\n1\r\nget a\r\nma a v\r\nincr a 1\r\nmg a v\r\ndelete a\r\nmd a\r\n",
            "L E L L L L L"))
script("pipeline_many_gets", one(setcmd(b"a", b"v")), Step(b"get a\r\n" * 200, " ".join(["E"] * 200)))
script("frame_bare_lf", one(b"set a 0 0 1\nx\r\n"), get(b"get a\n"), one(b"delete a\n"))
script("key_control_chars", one(setcmd(b"a\tb", b"1")), get(b"get a\tb\r\n"),
       one(setcmd(b"x\rb", b"2")), get(b"get x\rb\r\n"), one(b"set a\t0 0 1\r\nx\r\n", 2),
       one(setcmd(b"\x01\x7f\xff", b"3")), get(b"get \x01\x7f\xff\r\n"))
script("long_line_set_closes", closes(b"set " + b"k" * 3000))
script("long_line_junk_closes", closes(b"a" * 3000))
script("long_line_get_waits", one(setcmd(b"a", b"v")), get(b"get " + b"a " * 2000 + b"\r\n"))
script("long_line_gets_waits", get(b"gets " + b"zz " * 1500 + b"\r\n"))
script("long_line_gat_closes", closes(b"gat 10 " + b"a " * 1500))
script("long_line_mg_closes", closes(b"mg " + b"k" * 3000))
script("long_line_leading_spaces_get_closes", closes(b" " * 150 + b"get " + b"k " * 1500))
script("long_line_leading_spaces_get_ok", get(b" " * 50 + b"get " + b"k " * 1500 + b"\r\n"))
script("long_line_complete_processed", one(setcmd(b"k" * 2500, b"x"), 2))
script("quit_closes", one(setcmd(b"a", b"1")), closes(b"quit\r\n"))
script("quit_pipelined_flushes_earlier",
       closes(b"get a\r\n" + setcmd(b"a", b"1") + b"get a\r\nquit\r\nget a\r\n"))
script("quit_extra_tokens", closes(b"quit now\r\n"))
script("quit_other_connection_unaffected", one(setcmd(b"a", b"1")), closes(b"quit\r\n", conn=1),
       get(b"get a\r\n"))
script("long_line_other_connection_unaffected", one(setcmd(b"a", b"1")),
       closes(b"set " + b"x" * 3000, conn=1), get(b"get a\r\n"))

# ---------------------------------------------------------------- version / stats: shape only
script("version_shape", shaped(b"version\r\n", "L", r"VERSION \S+\r\n"), get(b"get a\r\n"))
script("stats_shape", shaped(b"stats\r\n", "E", r"(STAT \S+ [^\r\n]*\r\n)+END\r\n"), get(b"get a\r\n"))
script("stats_one_line_answers", one(b"stats reset\r\n"), one(b"stats detail on\r\n"),
       one(b"stats detail off\r\n"), one(b"stats detail\r\n"), one(b"stats detail bogus\r\n"),
       one(b"stats detail on off\r\n"), one(b"stats r\r\n"), one(b"stats bogus\r\n"),
       one(b"stats cachedump\r\n"), one(b"stats detail off\r\n"), get(b"get a\r\n"),
       doc="RESET, OK or an error: one line, not lines up to END")
script("stats_detail_dump_shape", one(b"stats detail on\r\n"), one(setcmd(b"pfx:a", b"1")),
       get(b"get pfx:a\r\n"), shaped(b"stats detail dump\r\n", "E", r"(PREFIX [^\r\n]*\r\n)*END\r\n"),
       one(b"stats detail off\r\n"), get(b"get pfx:a\r\n"))
script("stats_reset_other_connection_unaffected", one(setcmd(b"a", b"1")), one(b"stats reset\r\n", conn=1),
       get(b"get a\r\n"), one(b"stats detail on\r\n", conn=1), one(setcmd(b"b", b"2")),
       one(b"stats detail off\r\n", conn=1), get(b"get a b\r\n"),
       doc="clients sharing a batched backend connection with it see their own answers")

# ---------------------------------------------------------------- meta: mn, mg
script("mn_forms", one(b"mn\r\n"), one(b"mn extra tokens\r\n"))
script("mg_miss", one(b"mg a\r\n"), one(b"mg a v\r\n"), one(b"mg a v k Oab c f t s\r\n"))
script("mg_hit_no_flags", one(setcmd(b"a", b"hi")), one(b"mg a\r\n"), one(b"mg a v\r\n"))
script("mg_every_return_flag", one(b"ms mk 2 T0 F5\r\nhi\r\n"), one(b"mg mk v f t c k s h l O123\r\n"),
       one(b"mg mk h l\r\n"), one(b"mg mk O1 k f c t s\r\n"))
script("mg_flags_order_follows_request", one(setcmd(b"a", b"xy", 9)), one(b"mg a s f k v\r\n"),
       one(b"mg a k v s f\r\n"))
script("mg_quiet_hit_and_miss", one(setcmd(b"a", b"1")),
       quiet(b"mg a v q\r\nmg b v q\r\nmg a q\r\nmg c k q Oz\r\nmg a k q v\r\n"))
script("mg_quiet_all_miss", quiet(b"mg a v q\r\nmg b q\r\nmg c q k\r\n"))
script("mg_ttl_flags", one(b"ms a 1 T100\r\n1\r\n"), one(b"mg a t\r\n"), one(b"mg a T300 t\r\n"),
       one(b"mg a t\r\n"), one(b"mg a T0 t\r\n"), one(b"mg a t v\r\n"))
script("mg_no_update_flag", one(setcmd(b"a", b"1")), one(b"mg a u v h\r\n"), one(b"mg a h\r\n"))
script("mg_autovivify", one(b"mg nk N30 v c t s\r\n"), one(b"mg nk N30 v t\r\n"), one(b"mg nk c\r\n"),
       one(b"mg nk2 N0 s\r\n"))
script("mg_recache", one(b"ms k 2 T30 c\r\nhi\r\n"), one(b"mg k t\r\n"), one(b"mg k R40 c v\r\n"),
       one(b"mg k R40\r\n"), one(b"mg k R10\r\n"))
script("mg_errors", one(setcmd(b"mk", b"v")), one(b"mg mk zz\r\n"), one(b"mg mk v v\r\n"),
       one(b"mg mk !\r\n"), one(b"mg\r\n"), one(b"mg mk O" + b"x" * 31 + b"\r\n"),
       one(b"mg mk O" + b"x" * 32 + b"\r\n"), one(b"mg mk " + b"v " * 30 + b"\r\n"),
       one(b"mg mk E5\r\n"), one(b"mg mk Tx\r\n"), one(b"mg mk N\r\n"), one(b"mg mk \x01\r\n"))
script("mg_key_250_251", one(b"mg " + KEY250 + b" k\r\n"), one(b"mg " + KEY251 + b" v\r\n"),
       one(b"ms " + KEY250 + b" 1\r\nx\r\n"), one(b"mg " + KEY250 + b" v\r\n"))
script("mg_extra_spaces", one(setcmd(b"k", b"hi")), one(b"mg  k  v \r\n"))
script("mg_base64", one(b"ms a2V5 2 b k\r\nhi\r\n"), one(b"mg a2V5 b k v\r\n"), one(b"mg key k v\r\n"),
       get(b"get key\r\n"), one(b"mg bad!! b\r\n"), one(b"mg AAEC b v k\r\n"))
script("mg_on_text_set_item", one(setcmd(b"a", b"abc", 77)), one(b"mg a v f s t\r\n"))

# ---------------------------------------------------------------- meta: ms
script("ms_basic", one(b"ms a 2\r\nhi\r\n"), get(b"get a\r\n"), one(b"ms a 2 F7 T0\r\nho\r\n"),
       get(b"gets a\r\n"))
script("ms_echoed_flags", one(b"ms a 2 c k Oxy T0 F3 I\r\nhi\r\n"), one(b"ms a 2 O1 c\r\nhi\r\n"),
       one(b"ms a 2 k\r\nhi\r\n"), get(b"gets a\r\n"))
script("ms_modes", one(b"ms mk 2 MA\r\nhi\r\n"), one(b"ms mk 2\r\nhi\r\n"), one(b"ms mk 2 MA\r\nhi\r\n"),
       one(b"ms nope 2 MA\r\nhi\r\n"), one(b"ms nope 2 MR\r\nhi\r\n"), one(b"ms nope 2 ME\r\nhi\r\n"),
       one(b"ms nope 2 MP\r\nzz\r\n"), one(b"ms mk 2 MP\r\nzz\r\n"), one(b"ms mk 2 ME\r\nzz\r\n"),
       one(b"ms mk 2 MR\r\nrr\r\n"), get(b"get mk nope\r\n"), one(b"ms mk 2 MS\r\nss\r\n"),
       get(b"get mk\r\n"))
script("ms_invalid_modes", one(b"ms mk 2 MX\r\nzz\r\n"), one(b"ms mk 2 Mxx\r\nzz\r\n"),
       one(b"ms mk 2 M\r\nzz\r\n"), one(b"ms mk 2 Ms\r\nzz\r\n"), get(b"get mk\r\n"))
script("ms_cas", one(b"ms a 1 C1\r\nx\r\n"), one(b"ms a 1 c\r\nx\r\n"), one(b"ms a 1 C<C1> c\r\ny\r\n"),
       one(b"ms a 1 C<C1>\r\nz\r\n"), one(b"ms a 1 C<C2> MR\r\nw\r\n"), one(b"ms a 1 Cabc\r\nv\r\n"),
       get(b"get a\r\n"))
script("ms_quiet", one(b"ms k 2\r\nhi\r\n"),
       quiet(b"ms k 2 q\r\nhi\r\nms k 2 ME q\r\nhi\r\nms k 2 C1 q\r\nhi\r\nms n 2 MR q\r\nhi\r\n"),
       get(b"get k\r\n"))
script("ms_invalid", one(b"ms mk 2 E5\r\nhi\r\n"), one(b"ms mk 2 zz\r\nhi\r\n"),
       one(b"ms mk 2 v v\r\nhi\r\n"), one(b"ms mk 2 F-1\r\nhi\r\n"), one(b"ms mk 2 Fabc\r\nhi\r\n"),
       one(b"ms mk 2 T\r\nhi\r\n"), one(b"ms mk 2 Tx\r\nhi\r\n"),
       one(b"ms mk 2 O" + b"x" * 40 + b"\r\nhi\r\n"),
       get(b"get mk\r\n"))
script("ms_bad_length_no_swallow", one(b"ms mk S2\r\nhi\r\n", 2), one(b"ms mk\r\nhi\r\n", 2),
       one(b"ms mk abc\r\nhi\r\n", 2), one(b"ms mk -1\r\nhi\r\n", 2), one(b"ms\r\n"))
script("ms_bad_data_chunk", one(b"ms k 1\r\nxy\r\n", 2), one(b"ms k 3 q\r\nhi\r\nmn\r\n", 2),
       doc="a bad chunk is reported even with q; here it eats the m of mn")
script("ms_too_many_flags", one(b"ms k 1 " + b" ".join(b"O%d" % i for i in range(20)) + b"\r\nx\r\n", 2))
script("ms_value_sizes", one(b"ms e 0\r\n\r\n"), one(b"mg e v s\r\n"),
       one(b"ms k %d\r\n" % MAX_VALUE_K + b"b" * MAX_VALUE_K + b"\r\n"), one(b"mg k s\r\n"),
       one(b"ms k %d\r\n" % (MAX_VALUE_K + 1) + b"b" * (MAX_VALUE_K + 1) + b"\r\n"), one(b"mg k s\r\n"),
       one(b"ms f %d F1\r\n" % (MAX_VALUE_K - 4) + b"f" * (MAX_VALUE_K - 4) + b"\r\n"),
       one(b"ms f %d F1\r\n" % (MAX_VALUE_K - 3) + b"f" * (MAX_VALUE_K - 3) + b"\r\n"), one(b"mg f s f\r\n"),
       one(b"ms big %d\r\n" % (MAX_VALUE_K - 2) + b"b" * (MAX_VALUE_K - 2) + b"\r\n"),
       one(b"ms big %d\r\n" % (MAX_VALUE_K - 1) + b"b" * (MAX_VALUE_K - 1) + b"\r\n"))
script("ms_too_large_any_mode_deletes", one(b"ms k 3\r\nold\r\n"),
       one(b"ms k 2000000 ME\r\n" + b"a" * 2000000 + b"\r\n"), one(b"mg k v\r\n"))
def _oversized_ms(flags: bytes) -> bytes:
    return b"ms k 2000000 %s\r\n" % flags + b"a" * 2000000 + b"\r\n"


# memcached checks an oversized ms's flags before its size: a bad flag is that flag's error, the old
# value stays, and the data is swallowed all the same.
script("ms_too_large_bad_flags_answered_first", one(b"ms k 3\r\nold\r\n"),
       *(one(_oversized_ms(flags)) for flags in (
           b"E5", b"v v", b"T", b"Tx F1", b"Fx", b"Fx T1 Nx", b"C-1", b"MXX", b"MX", b"b", b"O" + b"9" * 40,
           b"O" + b"9" * 40 + b" MZ", b"Jx Dx", b"q Ix", b"I Tx q")),
       one(b"ms !!! 2000000 b\r\n" + b"a" * 2000000 + b"\r\n"),
       one(b"ms a=== 2000000 b\r\n" + b"a" * 2000000 + b"\r\n"),
       one(b"mg k v\r\n"), one(_oversized_ms(b"MS O123 T10 F3 I")), one(b"mg k v\r\n"))

script("ms_base64", one(b"ms a2V5 2 b k c\r\nhi\r\n"), one(b"ms bad!! 2 b\r\nhi\r\n"),
       one(b"mg a2V5 b v\r\n"))
script("ms_invalidate_with_cas", one(b"ms k 2\r\nhi\r\n"), one(b"ms k 2 I\r\nhi\r\n"),
       one(b"ms k 2 I C1\r\nho\r\n"), one(b"mg k v c\r\n"))

# ---------------------------------------------------------------- meta: md
script("md_paths", one(b"md a\r\n"), one(setcmd(b"a", b"1")), one(b"md a k O9\r\n"), one(b"md a k O9\r\n"),
       get(b"get a\r\n"))
script("md_quiet", one(setcmd(b"a", b"1")), quiet(b"md a q\r\nmd a q\r\nmd b q k\r\n"))
script("md_cas", one(b"ms a 1 c\r\nx\r\n"), one(b"md a C1\r\n"), quiet(b"md a C<C1> q\r\n"),
       get(b"get a\r\n"))
script("md_invalidate", one(b"ms mk 2\r\nhi\r\n"), one(b"md mk I T30\r\n"), one(b"mg mk v c t\r\n"),
       one(b"mg mk v c t\r\n"), one(b"ms mk 2 I C<C1>\r\nho\r\n"), one(b"mg mk v t\r\n"))
script("md_errors", one(b"md\r\n"), one(b"md a zz\r\n"), one(b"md a q q\r\n"), one(b"md bad!! b\r\n"),
       one(b"md " + KEY251 + b"\r\n"), one(b"md a " + b"k " * 25 + b"\r\n"), one(b"md a Dx\r\n"),
       one(b"md a O" + b"x" * 40 + b"\r\n"))
script("md_base64", one(b"ms a2V5 2 b\r\nhi\r\n"), quiet(b"md a2V5 b k q\r\n"), one(b"md a2V5 b k\r\n"))

# ---------------------------------------------------------------- meta: ma
script("ma_paths", one(b"ma cnt\r\n"), one(b"ma cnt N0 J10 v\r\n"), one(b"ma cnt v\r\n"),
       one(b"ma cnt MD D20 v\r\n"), one(b"ma cnt MI D5 v t c N0\r\n"), one(b"ma cnt M+ D2 v\r\n"),
       one(b"ma cnt M- D1 v k O5\r\n"), get(b"gets cnt\r\n"))
script("ma_errors", one(setcmd(b"cnt", b"1")), one(b"ma cnt MX\r\n"), one(b"ma cnt D-1\r\n"),
       one(b"ma cnt Dabc\r\n"), one(b"ma cnt J1 Jx\r\n"), one(b"ma cnt zz\r\n"), one(b"ma\r\n"),
       one(b"ma " + KEY251 + b"\r\n"), one(b"ma cnt D18446744073709551616\r\n"),
       one(b"ma cnt J18446744073709551616 N0\r\n"), one(b"ma cnt E5\r\n"))
script("ma_non_numeric", one(b"ms txt 3\r\nabc\r\n"), one(b"ma txt\r\n"), one(b"ma txt v q\r\n"))
script("ma_quiet", one(setcmd(b"n", b"5")),
       quiet(b"ma n q\r\nma n q v\r\nma nope q\r\nma viv q N0 J7\r\nma viv q v\r\n"), get(b"get n viv\r\n"))
script("ma_autovivify_ignores_delta", one(b"ma new2 N0 J5 MD D3\r\n"), one(b"mg new2 v\r\n"),
       one(b"ma new3 N0 v\r\n"))
script("ma_wrap_and_clamp", one(b"ma c N0 J18446744073709551615 v\r\n"), one(b"ma c v\r\n"),
       one(b"ma c MD D18446744073709551615 v\r\n"))
script("ma_cas", one(setcmd(b"num", b"10")), one(b"ma num C1 v\r\n"), one(b"mg num c\r\n"),
       one(b"ma num C<C1> v c\r\n"), one(b"ma miss C1\r\n"))
script("ma_ttl", one(b"ma t N100 J1 t\r\n"), one(b"ma t t T300\r\n"), one(b"ma t t\r\n"))
script("ma_base64", one(b"ma bnVt N0 b k v\r\n"), one(b"ma bnVt b k v\r\n"), get(b"get num\r\n"))

# ---------------------------------------------------------------- meta and text interplay
script("meta_text_cas_shared", one(b"ms a 1 c\r\n1\r\n"), get(b"gets a\r\n"), one(b"mg a c\r\n"),
       one(b"cas a 0 0 1 <C1>\r\n2\r\n"), one(b"mg a c v\r\n"))
script("meta_flags_visible_in_text", one(b"ms a 1 F123\r\n1\r\n"), get(b"get a\r\n"),
       one(setcmd(b"b", b"2", 456)), one(b"mg b f\r\n"))
script("meta_quiet_pipeline_ends_with_mn",
       Step(b"ms a 1 q\r\n1\r\nms b 1 q\r\n2\r\nmg a v q k\r\nmg zz v q k\r\nmg b v q k\r\nmd a q\r\n"
            b"md a q\r\nma n q N0\r\nma n q\r\nmn\r\n", "M"))

# ---------------------------------------------------------------- noreply as a misplaced token
script("noreply_in_place_of_a_number", quiet(b"set a 0 0 noreply\r\n"), quiet(b"incr a noreply\r\n"),
       quiet(b"touch a noreply\r\n"), one(b"delete noreply\r\n"), quiet(b"cas a 0 0 1 noreply\r\nx\r\n"),
       quiet(b"verbosity noreply\r\n"), quiet(b"flush_all abc noreply\r\n"),
       doc="the error is suppressed because the last token is noreply; nothing is swallowed")
script("noreply_as_key_in_get", one(setcmd(b"a", b"1")), get(b"get a noreply\r\n"),
       get(b"gat 100 a noreply\r\n"), one(setcmd(b"noreply", b"n")), get(b"get noreply\r\n"))
script("cas_unique_zero", one(b"cas a 0 0 1 0\r\n1\r\n"), one(setcmd(b"a", b"1")),
       one(b"cas a 0 0 1 0\r\n2\r\n"), get(b"get a\r\n"))

# ---------------------------------------------------------------- number parsing in text commands
script("exptime_int32_wrap", one(setcmd(b"a", b"1", exptime=2147483648)), get(b"get a\r\n"),
       one(setcmd(b"b", b"1", exptime=4294967296)), one(b"mg b t\r\n"),
       one(setcmd(b"c", b"1", exptime=99999999999)), get(b"get c\r\n"),
       doc="exptime is strtol truncated to int32")
script("numbers_plus_and_leading_zeros", one(b"set a 007 +1000 1\r\n1\r\n"), get(b"get a\r\n"),
       one(b"mg a t f\r\n"), one(b"incr a +5\r\n"), one(b"incr a 05\r\n"), one(b"incr a 0x5\r\n"),
       one(b"decr a 1a\r\n"), one(b"touch a +1000\r\n"), get(b"gat 0010 a\r\n"))
script("incr_long_numeric_value", one(setcmd(b"n", b"00000000000000000000000001")), one(b"incr n 1\r\n"),
       get(b"get n\r\n"), one(setcmd(b"m", b"123456789012345678901234")), one(b"incr m 1\r\n"))

# ---------------------------------------------------------------- side effects visible through meta
script("fetched_flag_after_text_commands",
       one(setcmd(b"a", b"1")), one(b"mg a h\r\n"), get(b"get a\r\n"), one(b"mg a h\r\n"),
       one(setcmd(b"b", b"1")), one(b"touch b 100\r\n"), one(b"mg b h\r\n"),
       one(setcmd(b"c", b"1")), get(b"gat 100 c\r\n"), one(b"mg c h\r\n"),
       one(setcmd(b"d", b"1")), one(b"incr d 1\r\n"), one(b"mg d h\r\n"),
       one(setcmd(b"e", b"1")), one(setcmd(b"e", b"1", cmd=b"append")), one(b"mg e h\r\n"),
       one(setcmd(b"f", b"1")), get(b"gets f\r\n"), one(b"cas f 0 0 1 <C1>\r\n2\r\n"), one(b"mg f h\r\n"),
       doc="h0/h1 shows whether the proxy's backend commands fetch items as memcached's text ones do")
script("append_keeps_old_flags_and_ttl", one(setcmd(b"a", b"1", 5, 1000)),
       one(setcmd(b"a", b"2", 9, -1, cmd=b"append")), one(setcmd(b"a", b"0", 8, -1, cmd=b"prepend")),
       get(b"get a\r\n"), one(b"mg a t f\r\n"))
script("replace_sets_new_flags_and_ttl", one(setcmd(b"a", b"1", 5, 1000)),
       one(setcmd(b"a", b"2", 9, 0, cmd=b"replace")), one(b"mg a t f v\r\n"))
script("touch_then_ttl", one(setcmd(b"a", b"1", 0, 1000)), one(b"touch a 0\r\n"), one(b"mg a t\r\n"),
       get(b"gat 2000 a\r\n"), one(b"mg a t\r\n"), get(b"gats 0 a\r\n"), one(b"mg a t\r\n"))

# ---------------------------------------------------------------- more framing
script("split_writes_reassembled", Step(b"se", ""), Step(b"t a 0 0 5\r\nhe", ""), one(b"llo\r\n"),
       Step(b"get", ""), Step(b" a", ""), get(b"\r\n"), Step(b"mg a ", ""), one(b"v\r\n"),
       Step(b"ms b 3\r", ""), Step(b"\n", ""), Step(b"x", ""), one(b"yz\r\n"), get(b"get b\r\n"))
script("long_line_boundary_2048", Step(b"set " + b"k" * 2044, ""), one(b"\r\n"),
       doc="2048 bytes without a newline are still waited for")
script("long_line_boundary_2049_closes", Step(b"set " + b"k" * 2044, ""), closes(b"x"))
script("long_line_get_in_parts", one(setcmd(b"a", b"v")), Step(b"get " + b"a " * 1500, ""),
       Step(b"a " * 1500, ""), get(b"a\r\n"))
script("long_line_get_without_space_closes", closes(b"get" + b"k" * 3000))
script("long_line_mg_complete_processed", one(b"mg " + b"k" * 2500 + b" v\r\n"))
script("ms_key_251_no_swallow", one(b"ms " + KEY251 + b" 2\r\nhi\r\n", 2))
script("large_multiget_response", one(setcmd(b"k", b"x" * MAX_VALUE_K)), one(setcmd(b"j", b"y" * 500000)),
       get(b"get k j k j k\r\n"), get(b"gets k\r\n"))
script("pipeline_500_mixed", Step(b"".join(setcmd(b"k%d" % i, b"v%d" % i) + b"get k%d\r\n" % i
                                           + b"mg k%d v k\r\n" % i + b"delete k%d\r\n" % (i - 1)
                                           for i in range(500)), " ".join(["L E L L"] * 500)))
script("pipeline_quiet_sets_then_mn", quiet(b"".join(setcmd(b"q%d" % i, b"%d" % i, extra=b" noreply")
                                                     for i in range(300))),
       get(b"get " + b" ".join(b"q%d" % i for i in range(0, 300, 37)) + b"\r\n"))

# ---------------------------------------------------------------- other memcached commands
script("shutdown_not_enabled", one(b"shutdown\r\n"), one(b"shutdown graceful\r\n"), get(b"get a\r\n"),
       doc="a proxy must not shut its backend down; memcached without -A refuses")
script("admin_noreply_silent", quiet(b"cache_memlimit 64 noreply\r\ncache_memlimit abc noreply\r\n"
                                     b"cache_memlimit noreply\r\nslabs automove 1 noreply\r\n"
                                     b"slabs automove 9 noreply\r\nslabs automove noreply\r\nlru noreply\r\n"
                                     b"lru foo bar noreply\r\nextstore x noreply\r\nextstore noreply\r\n"),
       doc="memcached reads noreply before refusing these; the proxy refuses them as silently")
script("admin_noreply_errors", quiet(b"cache_memlimit 64 noreply extra\r\nslabs noreply\r\n"
                                     b"slabs reassign 1 2 noreply\r\nslabs reassign 1 noreply\r\n"
                                     b"slabs foo noreply\r\nlru foo noreply x\r\nlru\r\nextstore\r\n"
                                     b"cache_memlimit\r\nlru_crawler enable noreply\r\n"
                                     b"lru_crawler tocrawl 10 noreply\r\nmisbehave noreply\r\n"))
script("cache_memlimit_reaches_memcached",
       one(b"cache_memlimit 64\r\n"), one(b"cache_memlimit 7\r\n"), one(b"cache_memlimit 2000000000\r\n"),
       one(b"cache_memlimit 64 extra\r\n"), one(b"cache_memlimit noreply x\r\n"), one(b"cache_memlimit -8\r\n"),
       one(b"cache_memlimit 64abc\r\n"), one(b"cache_memlimit 99999999999\r\n"),
       quiet(b"cache_memlimit 7 noreply\r\ncache_memlimit noreply noreply\r\ncache_memlimit 64 noreply\r\n"),
       doc="the pod's memcached answers it (OK, MEMLIMIT_TOO_SMALL, MEMLIMIT_ADJUST_FAILED); the memory "
           "limit is memcached's own, as for a client talking to it directly")
script("me_debug", one(b"me a\r\n"), one(b"me\r\n"),
       one(setcmd(b"a", b"1")),
       shaped(b"me a\r\n", "L", r"ME a exp=-1 la=\d+ cas=\d+ fetch=no cls=1 size=\d+\r\n"))

# ---------------------------------------------------------------- C-string and terminator corners
script("nul_byte_truncates_line", one(b"set a 0 0 1\x00garbage\r\nx\r\n"), get(b"get a\x00b\r\n"),
       one(b"\x00get a\r\n"), get(b"get a\x00\r\n"), one(b"mg a v\x00 zz\r\n"),
       doc="memcached handles the line as a C string: a NUL byte ends it")
script("cr_cr_lf_keeps_one_cr", one(setcmd(b"a", b"1")), get(b"get a\r\r\n"), one(setcmd(b"b\r", b"2")),
       get(b"get b\r\r\n"), get(b"get b\r\n"))
script("cr_cr_lf_makes_a_250_byte_key_too_long", one(setcmd(b"a", b"1")), get(b"get " + KEY250 + b"\r\r\n"),
       get(b"get a " + KEY250 + b"\r\r\n"), get(b"gets a\r\n"), one(b"delete " + KEY250 + b"\r\r\n"),
       get(b"get " + KEY250[1:] + b"\r\r\n"), one(b"touch " + KEY250 + b" 0\r\r\n"),
       doc="the kept \\r is the key's 251st byte: too long for a get or a delete (and a multiget's "
           "answers queued before it are dropped), not for a touch, whose last token is the exptime")
script("tab_is_not_a_separator", one(b"get\ta\r\n"), one(b"mg\ta v\r\n"), one(b"delete\ta\r\n"))
script("trailing_spaces", one(b"set a 0 0 1 \r\nx\r\n"), get(b"get a \r\n"), one(b"incr a 1 \r\n"),
       one(b"delete a  \r\n"))
E_ACUTE_250 = "é".encode() * 125
script("key_utf8_bytes_counted", one(setcmd(E_ACUTE_250, b"1")), get(b"get " + E_ACUTE_250 + b"\r\n"),
       one(setcmd(E_ACUTE_250 + b"x", b"1"), 2))
script("quit_noreply_closes", closes(b"quit noreply\r\n"))

# ---------------------------------------------------------------- meta flag parsing corners
script("meta_flags_only_first_char_counts", one(setcmd(b"a", b"x")), one(b"mg a O\r\n"),
       one(b"mg a v1 s9 f0 k\r\n"), one(b"mg a vvv\r\n"), one(b"mg a \xff\r\n"), one(b"mg a P L v\r\n"),
       one(b"ms a 1 P L u\r\ny\r\n"), one(b"ms a 1 S2\r\nz\r\n"), get(b"get a\r\n"))
script("ms_length_and_ttl_parsing", one(b"ms b +2\r\nhi\r\n"), one(b"ms c 02\r\nhi\r\n"),
       one(b"ms d 2 T-1\r\nhi\r\n"), one(b"ms e 2 T4294967296\r\nhi\r\n"), one(b"mg b v\r\n"),
       one(b"mg c v\r\n"), one(b"mg d v\r\n"), one(b"mg e t\r\n"))
script("ma_more_modes", one(b"ma v1 q v N0 J3\r\n"), one(b"ma v1 D0 v\r\n"), one(b"ma v1 MI\r\n"),
       one(b"ma v1 M+ N0 T100 t v\r\n"), one(b"ma v1 M- D2 v t\r\n"), one(b"ma v1 Mi\r\n"))
script("meta_quiet_then_text_without_mn",
       Step(b"mg miss q\r\nms x 1 q\r\n1\r\nmd nope q\r\nget x\r\n", "L E"))
script("meta_quiet_errors_shown", quiet(b"md a q C1\r\nma zz q C1 N0\r\nma zz q\r\nma zz q Dx\r\n"
                                        b"ms a 1 q MX\r\n1\r\nmg a q zz\r\n"))
script("meta_base64_key_length_checked_encoded",
       one(b"mg " + b"enp6" * 67 + b" b v\r\n"), one(b"ms " + b"enp6" * 67 + b" 1 b\r\nx\r\n", 2),
       one(b"ms " + b"enp6" * 62 + b" 1 b k\r\nx\r\n"), one(b"mg " + b"z" * 186 + b" k v\r\n"))
script("ms_too_large_quiet_still_reported", one(b"ms k 1\r\nx\r\n"),
       quiet(b"ms k 2000000 q\r\n" + b"a" * 2000000 + b"\r\n"), one(b"mg k v\r\n"),
       quiet(b"ms k %d q\r\n" % (MAX_VALUE_K + 1) + b"a" * (MAX_VALUE_K + 1) + b"\r\n"))
script("too_large_noreply_between_limits", one(setcmd(b"k", b"old")),
       quiet(setcmd(b"k", b"a" * (MAX_VALUE_K + 20), extra=b" noreply")), get(b"get k\r\n"),
       doc="above memcached's limit, below the proxy's max_item_size")

# ---------------------------------------------------------------- strtol corners in text commands
script("numbers_with_whitespace_bytes", one(b"set a 5\t 0 1\r\nx\r\n"), get(b"get a\r\n"),
       one(b"set b \t6 0\x0b 1\x0c\r\ny\r\n"), get(b"get b\r\n"), one(setcmd(b"n", b"1")),
       one(b"incr n \t5\r\n"), one(b"decr n 2\x0b\r\n"),
       doc="strtol skips leading whitespace and accepts trailing whitespace; only space splits tokens")
script("numbers_minus_zero_and_zero_padding", one(b"set a -0 -0 -0\r\n\r\n"), get(b"get a\r\n"),
       one(setcmd(b"n", b"5")), one(b"incr n -0\r\n"), one(b"incr n 99999999999999999999\r\n"),
       one(b"set f 000000000000000000000000000005 0 0000000000000000001\r\nx\r\n"), get(b"get f\r\n"))
script("cas_unique_limits", one(setcmd(b"a", b"1")), one(b"cas a 0 0 1 18446744073709551616\r\nx\r\n", 2),
       one(b"cas a 0 0 1 18446744073709551615\r\nx\r\n"), one(b"cas b 0 0 1 18446744073709551615\r\nx\r\n"))
script("high_byte_line_is_unknown", get(b"get a\r\n"), one(b"\x80abc\r\n"), one(b"\xff\r\n"))
script("get_key_251_after_24_tokens", one(setcmd(b"a", b"1")),
       get(b"get " + b"a " * 30 + KEY251 + b" a\r\n"), get(b"get " + b"a " * 30 + b"\r\n"))
script("gat_key_251", get(b"gat 10 " + KEY251 + b"\r\n"), get(b"gats 10 a " + KEY251 + b"\r\n"))
script("long_line_past_read_buffer_closes_even_whole", one(b"mg k v\r\n"),
       closes(b"mg k v " + b"x" * 17000 + b"\r\nmn\r\n"),
       doc="a non-get line longer than memcached's 16 KiB read buffer never fits in it: closed")
script("long_line_16384_whole_processed", one(b"ms k 1 T" + b"1" * 16374 + b"\r\nx\r\n"),
       doc="at 16,384 bytes with its CRLF a whole line still fits memcached's buffer")
script("long_line_16385_whole_closes", closes(b"ms k 1 T" + b"1" * 16375 + b"\r\nx\r\n"))
script("long_line_past_read_buffer_set_closes", closes(b"set k 0 0 1 " + b"a" * 20000 + b"\r\nmn\r\n"))
script("long_line_past_read_buffer_get_processed", one(setcmd(b"a", b"v")),
       get(b"get " + b"a " * 9000 + b"\r\n"))
script("long_meta_lines_whole_answered_as_memcached", one(setcmd(b"k", b"v", 3)),
       one(b"mg k v f T" + b"0" * 3000 + b"5\r\n"), one(b"mg k s" + b" " * 3000 + b"t\r\n"),
       one(b"mg k v O" + b"9" * 3000 + b"\r\n"), one(b"mg " + b"k" * 3000 + b" v\r\n"),
       one(b"ms k " + b"0" * 3000 + b"2 F\t\t" + b"0" * 3000 + b"7\r\nhi\r\n"), one(b"mg k v f\r\n"),
       one(b"ms k 2 M" + b"S" * 3000 + b"\r\nhi\r\n"), one(b"mg k v Z" + b"1" * 3000 + b"\r\n"),
       one(b"ma k N" + b"0" * 3000 + b"1x J" + b"5" * 3000 + b"\r\n"),
       one(b"md k q C" + b"1" * 3000 + b"\r\nmn\r\n", 2),
       one(b"mg k v T" + b"\t" * 3000 + b"-1\r\n"), one(b"verbosity " + b"0" * 3000 + b"1\r\n"),
       one(b"stats " + b"z" * 3000 + b"\r\n"),
       doc="long lines memcached reads whole: answered the same, and never forwarded long")
script("long_line_gat_complete_processed", one(setcmd(b"a", b"1")), get(b"gat 100 " + b"a " * 1500 + b"\r\n"))
script("large_value_data_in_parts", Step(b"set k 0 0 100000\r\n" + b"a" * 3000, ""), Step(b"b" * 50000, ""),
       one(b"c" * 47000 + b"\r\n"), one(b"mg k s\r\n"), get(b"get k\r\n"),
       doc="the data block is not a command line: no 2048-byte limit applies to it")
script("bad_chunk_large_value", one(b"set k 0 0 100000\r\n" + b"a" * 100000 + b"XX", 1), one(b"\r\n"),
       one(b"mg k\r\n"))
script("bad_chunk_append_cas", one(setcmd(b"a", b"1")), one(b"append a 0 0 1\r\nxy\r\n", 2),
       get(b"gets a\r\n"), one(b"cas a 0 0 1 <C1>\r\nxy\r\n", 2), get(b"get a\r\n"))

# ---------------------------------------------------------------- everything in one write
script("pipeline_everything_one_write", Step(
    setcmd(b"big", b"B" * 500000, 3)                     # STORED
    + b"get big nope big\r\n"                             # VALUE big, VALUE big, END
    + b"mg big s f q\r\nmg nope v q\r\n"                  # HD s500000 f3 (EN suppressed)
    + b"set n 0 0 1 noreply\r\n7\r\nincr n 3\r\n"         # 10
    + b"touch n 1000\r\nverbosity 0\r\nflush_all 1000\r\n"  # TOUCHED, OK, OK
    + b"set a 0 0 1\r\nxy\r\n"                            # CLIENT_ERROR bad data chunk, ERROR
    + b"set t 0 0 2000000\r\n" + b"t" * 2000000 + b"\r\n"  # SERVER_ERROR object too large
    + b"ms m 2 T0 c\r\nhi\r\nmd gone q\r\nma n v\r\n"     # HD c, NF, VA 2 11
    + b"get\x00x\r\nfoo\r\n\r\n"                           # ERROR, ERROR, ERROR
    + b"gets n m\r\ndelete big\r\nmn\r\n",                # VALUE n, VALUE m, END, DELETED, MN
    "L E L L L L L L2 L L L L L L L E L M"))

# ---------------------------------------------------------------- slow and partial clients
_BYTEWISE = setcmd(b"slow", b"value") + b"get slow\r\nmg slow v\r\n"
script("byte_by_byte", *[Step(_BYTEWISE[i:i + 1], "") for i in range(len(_BYTEWISE) - 1)],
       Step(_BYTEWISE[-1:], "L E L"), doc="every byte in its own write")
script("partial_set_does_not_block_others", Step(b"set p 0 0 10\r\n01234", ""),
       get(b"get p\r\n", conn=1), one(setcmd(b"other", b"o"), conn=1), one(b"56789\r\n"),
       get(b"get p other\r\n", conn=1),
       doc="a client stuck mid-value must not hold up other clients, and its item is not visible yet")
script("partial_line_does_not_block_others", one(setcmd(b"a", b"1")), Step(b"get a", ""),
       get(b"get a\r\n", conn=1), Step(b" a", ""), get(b"\r\n"))
script("partial_too_large_does_not_block_others", one(setcmd(b"k", b"old")),
       Step(b"set k 0 0 2000000\r\n" + b"x" * 1000000, ""), get(b"get other\r\n", conn=1),
       one(setcmd(b"other", b"o"), conn=1), Step(b"x" * 1000000 + b"\r\nget k other\r\n", "L E"),
       doc="memcached sends SERVER_ERROR only once the swallow is over; k is deleted either way")

# ---------------------------------------------------------------- exptime parsing on gat/touch, big multigets
script("gat_touch_exptime_parsing", one(setcmd(b"a", b"1")), get(b"gat +1000 a\r\n"), one(b"mg a t\r\n"),
       get(b"gat \t2000 a\r\n"), one(b"mg a t\r\n"), get(b"gat 4294967296 a\r\n"), one(b"mg a t\r\n"),
       one(b"touch a 0003000\r\n"), one(b"mg a t\r\n"), one(b"touch a -0\r\n"), one(b"mg a t\r\n"),
       get(b"gat 1e3 a\r\n"), one(b"touch a 10x\r\n"))
script("incr_keeps_flags_and_ttl", one(setcmd(b"n", b"1", 5, 1000)), one(b"incr n 1\r\n"),
       one(b"mg n f t v\r\n"), one(b"decr n 9\r\n"), one(b"mg n f t v\r\n"))
script("multiget_1000_keys", Step(b"".join(setcmd(b"key%d" % i, b"v%d" % i, i) for i in range(0, 1000, 7)),
                                  " ".join(["L"] * len(range(0, 1000, 7)))),
       get(b"get " + b" ".join(b"key%d" % i for i in range(1000)) + b"\r\n"),
       get(b"gets " + b" ".join(b"key%d" % i for i in range(999, -1, -3)) + b"\r\n"))
