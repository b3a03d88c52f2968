"""Classic text commands: retrievals, storage, arithmetic, delete, touch, the odd admin command,
and lines memcached refuses (unknown verbs, missing or extra tokens, NULs, 3,000-byte keys)."""

from __future__ import annotations

import random

from .vocabulary import EXPTIMES, FLAGS, KEYS, Command, cas_token, key, pick, value


def line_end(rng: random.Random) -> bytes:
    return pick(rng, (20, b"\r\n"), (1, b"\n"), (0.3, b"\r\r\n"))


def retrieval(rng: random.Random, stepwise: bool, long_keys: bool = True) -> Command:
    """get/gets/gat/gats (and bget) of 0-30 keys. LONG_KEYS false: no key over 250 bytes (a
    multiget with one makes memcached drop the answers it had queued; see drop-on-close)."""
    verb = rng.choice([b"get", b"gets", b"gat", b"gats", b"get", b"gets", b"bget"])
    keys = [key(rng) for _ in range(pick(rng, (1, 0), (6, 1), (4, 2), (2, 4), (0.3, 30)))]
    if not long_keys:
        keys = [k if len(k) <= 250 else b"k0" for k in keys]
    parts = [verb]
    if verb.startswith(b"gat") and rng.random() < 0.9:
        parts.append(rng.choice(EXPTIMES))
    line = (b"  " if rng.random() < 0.1 else b" ").join(parts + keys)
    if not long_keys and keys and len(keys[-1]) >= 250:
        return Command(verb.decode(), line + b"\r\n")  # "\r\r\n" would make the last key 251 bytes
    if rng.random() < 0.05:
        line = b"  " + line + b"  "
    return Command(verb.decode(), line + line_end(rng))


def storage(rng: random.Random, stepwise: bool) -> Command:
    """set/add/replace/append/prepend/cas, now and then with a wrong length, bad numbers, noreply,
    an extra token or a data block that does not end in \\r\\n."""
    verb = rng.choice([b"set", b"set", b"add", b"replace", b"append", b"prepend", b"cas", b"cas"])
    k = key(rng)
    flags = rng.choice(FLAGS)
    data = value(rng, len(k), int(flags) if flags.isdigit() else 0)
    length = pick(rng, (92, b"%d" % len(data)), (2, b"%d" % max(0, len(data) - 1)), (2, b"%d" % (len(data) + 1)),
                  (2, rng.choice([b"abc", b"-1", b"4294967297", b"2147483648", b"+%d" % len(data),
                                  b"0%d" % len(data)])))
    parts = [verb, k, flags, rng.choice(EXPTIMES), length]
    if verb == b"cas" and rng.random() < 0.95:
        parts.append(cas_token(rng, stepwise))
    if rng.random() < 0.15:
        parts.append(b"noreply")
    if rng.random() < 0.02:
        parts.append(b"extra")
    end = b"\r\n" if rng.random() < 0.95 else rng.choice([b"\n", b"xx", b"\r", b""])
    return Command(verb.decode(), b" ".join(parts) + b"\r\n" + data + end)


DELTAS = (b"1", b"1", b"5", b"0", b"18446744073709551615", b"18446744073709551616", b"-1", b"abc",
          b"12345678901234567890", b"99999999999999999999", b"-0", b"01")


def arithmetic(rng: random.Random, stepwise: bool) -> Command:
    verb = rng.choice([b"incr", b"decr"])
    parts = [verb, key(rng), rng.choice(DELTAS)]
    if rng.random() < 0.15:
        parts.append(b"noreply")
    if rng.random() < 0.03:
        parts = parts[:2]
    return Command(verb.decode(), b" ".join(parts) + b"\r\n")


def deletion(rng: random.Random, stepwise: bool) -> Command:
    tail = pick(rng, (6, []), (1, [b"0"]), (1, [b"noreply"]), (1, [b"0", b"noreply"]), (0.5, [b"1"]),
                (0.5, [b"noreply", b"0"]), (0.3, [b"a", b"b"]))
    return Command("delete", b" ".join([b"delete", key(rng), *tail]) + b"\r\n")


def touch(rng: random.Random, stepwise: bool) -> Command:
    parts = [b"touch", key(rng), rng.choice(EXPTIMES)]
    if rng.random() < 0.15:
        parts.append(b"noreply")
    r = rng.random()
    if r < 0.05:
        parts = parts[:2]
    elif r < 0.08:
        parts.append(b"extra")
    elif r < 0.1:
        parts[0] = b"gat"
    return Command("touch", b" ".join(parts) + b"\r\n")


ADMIN = (b"version\r\n", b"verbosity 1\r\n", b"verbosity 0\r\n", b"verbosity\r\n", b"verbosity abc\r\n",
         b"verbosity 1 noreply\r\n", b"flush_all\r\n", b"flush_all 0\r\n", b"flush_all noreply\r\n",
         b"flush_all 100\r\n", b"flush_all -1\r\n", b"flush_all abc\r\n", b"flush_all 1 2\r\n",
         b"flush_all 1 2 3\r\n", b"flush_all 0 noreply\r\n", b"mn\r\n", b"mn extra\r\n")


def admin(rng: random.Random, stepwise: bool) -> Command:
    return Command("admin", rng.choice(ADMIN))


MALFORMED = (
    b"\r\n", b"\n", b"   \r\n", b"\t\r\n", b"GET k0\r\n", b"Get k0\r\n", b"SET k0 0 0 1\r\nx\r\n", b"foo bar\r\n",
    b"get\r\n", b"gets \r\n", b"gat\r\n", b"gat 10\r\n", b"set k0 0 0\r\n", b"set k0\t0 0 1\r\nx\r\n", b"incr k0\r\n",
    b"touch k0\r\n", b"delete\r\n", b"x\r\n", b"m\r\n", b"mg\r\n", b"ms\r\n", b"md\r\n", b"ma\r\n", b"me\r\n",
    b"mx k0\r\n", b"set k0 0 0 1 noreply extra\r\nx\r\n", b"get " + b" ".join(KEYS * 8) + b"\r\n",
    b"set " + b" ".join([b"a"] * 30) + b"\r\n", b"mg k0 " + b" ".join([b"v"] * 25) + b"\r\n",
    b"ms k0 1 " + b" ".join([b"T0"] * 25) + b"\r\nx\r\n", b"md k0 " + b" ".join([b"q"] * 25) + b"\r\n",
    b"ma k0 " + b" ".join([b"v"] * 25) + b"\r\n", b"get k0\x00k1\r\n", b"\x00get k0\r\n", b"mg k0 v\x00 zz\r\n",
    b"\x80\r\n", b"\xffget k0\r\n", b"get k0\r\r\n", b"GET / HTTP/1.1\r\n", b"quit\r\n", b"quit extra\r\n",
    b"get " + b"k" * 3000 + b"\r\n", b"gat 0 " + b"k" * 3000 + b"\r\n", b"set " + b"k" * 3000 + b" 0 0 1\r\nx\r\n",
    b"mg " + b"k" * 3000 + b" v\r\n", b"incr k0 \t5\r\n", b"set k0 5\t 0 1\r\nx\r\n",
    b"set k0 0 0 1\x00garbage\r\nx\r\n",
)


def malformed(rng: random.Random, stepwise: bool, long_keys: bool = True) -> Command:
    line = rng.choice([m for m in MALFORMED if long_keys or not (m[:3] in (b"get", b"gat") and len(m) > 2000)])
    return Command("junk", line)
