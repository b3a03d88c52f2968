"""Meta commands (mg, ms, md, ma, me, mn): any flag from each verb's alphabet and beyond, mostly
sensible flag sets, and single lines of 2-12 KiB (padded numbers, runs of tabs or spaces, long
tokens and keys) that memcached reads whole only because they fit its 16 KiB read buffer."""

from __future__ import annotations

import base64
import random

from .vocabulary import KEYS, Command, cas_token, key, pick, value

ANY_FLAGS = {
    "mg": [*"vftskchlquObNRTEPL", "zz", "Z", "S", "x", "I", "M", "D", "\x7f"],
    "ms": [*"bcCEFIkOqsTMNPLS", "zz", "v", "f", "x"],
    "md": [*"bCEIkOqTx", "zz", "v", "N"],
    "ma": [*"bCENJDTMqOktcv", "zz", "f", "x"],
}
TTLS = (b"0", b"30", b"100", b"-1", b"", b"abc", b"4294967296", b"2592001")
NUMBERS = {  # a numeric flag's argument, by flag
    "O": (b"1", b"123", b"abc", b"", b"x" * 40),
    "N": TTLS, "R": TTLS, "T": TTLS,
    "D": (b"1", b"5", b"0", b"18446744073709551615", b"18446744073709551616", b"-1", b"abc", b""),
    "J": (b"0", b"3", b"18446744073709551615", b"-1", b"abc", b""),
    "F": (b"0", b"5", b"4294967295", b"4294967296", b"-1", b"abc", b""),
}
OTHER_NUMBERS = (b"0", b"1", b"5", b"99999999999", b"abc", b"")
MODES = (b"S", b"E", b"A", b"P", b"R", b"X", b"I", b"D", b"+", b"-", b"s", b"a", b"i", b"xx", b"")


def any_flag(rng: random.Random, verb: str, stepwise: bool) -> bytes:
    flag = rng.choice(ANY_FLAGS[verb])
    if flag == "C":
        return b"C" + cas_token(rng, stepwise, OTHER_NUMBERS)
    if flag in "NRTEFJDOS" and len(flag) == 1:
        return flag.encode() + rng.choice(NUMBERS.get(flag, OTHER_NUMBERS))
    if flag == "M":
        return b"M" + rng.choice(MODES)
    return flag.encode()


def base64_key(rng: random.Random, k: bytes, flags: list[bytes]) -> bytes:
    """With the b flag, the key base64-encoded (or a string that is not valid base64)."""
    if b"b" not in flags:
        flags.append(b"b")
    return rng.choice([base64.b64encode(k), base64.b64encode(k), b"!!!", b"aw", b"a2V5"])


def then_mn(rng: random.Random, flags: list[bytes]) -> bytes:
    """Quiet commands are followed by ``mn`` most of the time, as clients do."""
    return b"mn\r\n" if b"q" in flags and rng.random() < 0.6 else b""


def meta_set(k: bytes, length: bytes, flags: list[bytes], data: bytes, end: bytes, after: bytes) -> Command:
    head = b" ".join([b"ms", k, *([length] if length else []), *flags])
    return Command("ms", head + b"\r\n" + data + end + after)


def any_meta(rng: random.Random, stepwise: bool) -> Command:
    """A meta command with 0-5 flags drawn from anything its verb might see."""
    verb = pick(rng, (5, "mg"), (4, "ms"), (2, "md"), (2, "ma"), (0.5, "me"), (0.5, "mn"))
    if verb == "mn":
        return Command("mn", b"mn\r\n")
    k = key(rng)
    flags = [] if verb == "me" else [any_flag(rng, verb, stepwise)
                                     for _ in range(pick(rng, (1, 0), (3, 1), (3, 2), (2, 3), (1, 5)))]
    if b"b" in flags or (verb != "me" and rng.random() < 0.05):
        k = base64_key(rng, k, flags)
    after = then_mn(rng, flags)
    if verb == "ms":
        data = value(rng, len(k))
        length = pick(rng, (93, b"%d" % len(data)), (3, b"%d" % max(0, len(data) + rng.choice([-1, 1]))),
                      (4, rng.choice([b"abc", b"-1", b"", b"+%d" % len(data), b"S%d" % len(data)])))
        end = b"\r\n" if rng.random() < 0.96 else rng.choice([b"\n", b"xx", b""])
        return meta_set(k, length, flags, data, end, after)
    eol = pick(rng, (20, b"\r\n"), (1, b"\n"), (0.3, b"\r\r\n"))
    return Command(verb, b" ".join([verb.encode(), k, *flags]) + eol + after)


SENSIBLE_TTLS = (b"0", b"30", b"100", b"-1", b"2592001", b"4294967295", b"abc", b"")
EXPLICIT_CAS = (b"5", b"99999", b"0", b"abc")
CAS_NUMBERS = (b"0", b"1", b"12345", b"18446744073709551615", b"18446744073709551616", b"abc", b"")


def sensible_flags(rng: random.Random, verb: str, stepwise: bool) -> list[bytes]:
    """Each verb's real flags, each with a plausible argument."""
    ttl = rng.choice(SENSIBLE_TTLS)
    cas = b"C" + cas_token(rng, stepwise, CAS_NUMBERS)
    if verb == "mg":
        return [b"v", b"f", b"t", b"s", b"k", b"c", b"h", b"l", b"u", b"q", b"b",
                b"O" + rng.choice([b"1", b"abc", b""]), b"N" + ttl, b"R" + rng.choice(SENSIBLE_TTLS),
                b"T" + rng.choice(SENSIBLE_TTLS), b"E" + rng.choice(EXPLICIT_CAS)]
    if verb == "ms":
        return [b"c", b"k", b"q", b"I", b"b", b"s", b"f", b"t", b"O" + rng.choice([b"7", b""]),
                b"F" + rng.choice([b"0", b"5", b"4294967295", b"4294967296", b"-1", b"abc"]), b"T" + ttl, cas,
                b"E" + rng.choice(EXPLICIT_CAS), b"N" + rng.choice(SENSIBLE_TTLS),
                b"M" + rng.choice([b"S", b"E", b"A", b"P", b"R", b"s", b"e", b"a", b"p", b"r", b"X", b"I", b"+", b"",
                                   b"SS", b"\x00"])]
    if verb == "md":
        return [b"q", b"k", b"I", b"x", b"b", b"O" + rng.choice([b"9", b""]), cas, b"T" + ttl,
                b"E" + rng.choice([b"5", b"abc"])]
    big = (b"18446744073709551615", b"18446744073709551616", b"-1", b"abc", b"")
    return [b"N" + ttl, b"J" + rng.choice((b"0", b"13", *big)), b"D" + rng.choice((b"1", b"7", b"0", *big)),
            b"T" + rng.choice(SENSIBLE_TTLS),
            b"M" + rng.choice([b"+", b"-", b"I", b"D", b"i", b"d", b"incr", b"decr", b"A", b"X", b""]),
            b"q", b"O" + rng.choice([b"5", b""]), b"k", b"b", cas, b"c", b"t", b"v", b"E" + rng.choice([b"5", b"abc"])]


def sensible_meta(rng: random.Random, stepwise: bool) -> Command:
    """mg/ms/md/ma with distinct, meaningful flags (now and then one repeated)."""
    verb = pick(rng, (4, "mg"), (4, "ms"), (2, "md"), (4, "ma"))
    k = rng.choice(KEYS) if rng.random() < 0.93 else key(rng)
    pool = sensible_flags(rng, verb, stepwise)
    flags = rng.sample(pool, min(pick(rng, (1, 0), (3, 1), (4, 2), (3, 3), (2, 5), (1, 8)), len(pool)))
    if flags and rng.random() < 0.05:
        flags.append(flags[0])
    if b"b" in flags:
        k = base64.b64encode(k) if rng.random() < 0.9 else rng.choice([b"!!!", b"aw", b"a2V5="])
    after = then_mn(rng, flags)
    if verb == "ms":
        data = (rng.choice([b"", b"1", b"10", b"18446744073709551615", b"abc", b"v" * 100, b"x" * 3000])
                if rng.random() < 0.8 else value(rng, len(k)))
        return meta_set(k, b"%d" % len(data), flags, data, b"\r\n", after)
    return Command(verb, b" ".join([verb.encode(), k, *flags]) + b"\r\n" + after)


# -- lines of 2-12 KiB -------------------------------------------------------------------------

LONG_NUMERIC = {"mg": "NRT", "ms": "TFCN", "md": "TC", "ma": "NJDTC"}
LONG_PLAIN = {
    "mg": [b"v", b"f", b"t", b"s", b"k", b"c", b"q", b"b", b"u", b"E5"],
    "ms": [b"c", b"k", b"q", b"I", b"s", b"f", b"t", b"b", b"MS", b"ME", b"MA", b"MP", b"MR"],
    "md": [b"q", b"k", b"I", b"x", b"b"],
    "ma": [b"q", b"k", b"c", b"t", b"v", b"b", b"MI", b"MD", b"M+", b"M-"],
}
LONG_VALUES = {"N": (b"0", b"30", b"100", b"-1", b"4294967296", b""), "R": (b"30", b"0", b"100", b"-1"),
               "T": (b"0", b"30", b"100", b"-1", b"2592001", b"4294967295", b""),
               "F": (b"0", b"5", b"4294967295", b"4294967296", b"-1", b""),
               "C": (b"0", b"1", b"12345", b"18446744073709551615", b"18446744073709551616", b""),
               "J": (b"0", b"13", b"18446744073709551615", b"18446744073709551616", b"-1", b""),
               "D": (b"1", b"7", b"0", b"18446744073709551615", b"18446744073709551616", b"-1", b"")}
LONGEST = 14500  # with its data and the mn after it, well inside memcached's 16 KiB read buffer


class LongLine:
    """The parts of one long meta line while it is padded: numeric flags ([name, argument]),
    other tokens, the data length of an ms, and the separators between tokens."""

    def __init__(self, rng: random.Random, verb: str, stepwise: bool) -> None:
        self.rng, self.verb = rng, verb
        self.key = rng.choice(KEYS)
        self.numbers = [[f.encode(), b"<C1>" if f == "C" and stepwise and rng.random() < 0.5
                         else rng.choice(LONG_VALUES[f])]
                        for f in rng.sample(LONG_NUMERIC[verb], rng.randint(1, len(LONG_NUMERIC[verb])))]
        self.plain = rng.sample(LONG_PLAIN[verb], rng.randint(0, min(4, len(LONG_PLAIN[verb]))))
        self.extra: list[list[bytes]] = []
        if rng.random() < 0.5:
            self.extra.append([b"O", rng.choice([b"1", b"77", b"abc", b""])])
        if verb in ("ms", "ma") and rng.random() < 0.3:
            self.extra.append([b"M", rng.choice([b"S", b"E", b"I", b"+", b""])])
        if rng.random() < 0.2:
            self.extra.append([rng.choice([b"zz", b"Z", b"x", b"\x7f", b"y"]), b""])
        self.data = rng.choice([b"", b"1", b"10", b"v", b"abc", b"v" * 100]) if verb == "ms" else None
        self.length = [b"", b"%d" % len(self.data)] if self.data is not None else None
        self.separators = [b" "]

    def pad(self, how: str, n: int) -> None:
        """Lengthen the line by about N bytes, the way HOW names."""
        rng = self.rng
        if how == "zero":
            if self.numbers:
                number = rng.choice(self.numbers)
                tail = number[1] if number[1] not in (b"", b"<C1>") else rng.choice([b"", b"5"])
                number[1] = b"0" * n + tail
            else:
                self.extra.append([b"O", b"0" * n + b"1"])
        elif how == "tab":
            space = b"\t" * n if rng.random() < 0.7 else bytes(rng.choice(b"\t\x0b\x0c") for _ in range(n))
            if self.numbers and rng.random() < 0.8:
                number = rng.choice(self.numbers)
                number[1] = space + number[1]
            elif self.length is not None:
                self.length[0] = space + self.length[0]
            else:
                self.extra.append([b"T", space + b"30"])
        elif how == "longtok":
            which = rng.choice(["O", "O", "M", "unknown"])
            if which == "O":
                self.extra.append([b"O", bytes(rng.choice(b"0123456789abcxyz") for _ in range(n))])
            elif which == "M":
                self.extra.append([b"M", b"S" * n if rng.random() < 0.5 else b"x" * n])
            else:
                self.extra.append([rng.choice([b"z", b"Z", b"x", b"y"]), b"z" * n])
        elif how == "spaces":
            self.separators = [b" " * rng.randint(1, max(1, n // 4)) for _ in range(8)]
        elif how == "key":
            self.key = rng.choice([b"k", b"a", b"kx"]) * (n if rng.random() < 0.8 else rng.choice([250, 251]))
        elif how == "datalen" and self.length is not None:
            self.length[0] = b"0" * n + self.length[0]

    def render(self) -> bytes:
        rng = self.rng
        tokens = [b"".join(x) for x in self.numbers + self.extra] + self.plain
        rng.shuffle(tokens)
        k = base64.b64encode(self.key) if b"b" in tokens and len(self.key) < 8000 else self.key
        head = [self.verb.encode(), k, *([b"".join(self.length)] if self.length else []), *tokens]
        line = head[0] + b"".join(rng.choice(self.separators) + t for t in head[1:])
        if rng.random() < 0.1:
            line += rng.choice(self.separators)
        body = b"\r\n" + (self.data + b"\r\n" if self.data is not None else b"")
        return line + body + b"mn\r\n"


def long_meta(rng: random.Random, stepwise: bool) -> Command:
    """One mg/ms/md/ma line of about 2.1-12 KiB (now and then 1.5-2.6 KiB), then ``mn``; sent
    alone and whole (see :class:`~fuzz.differential.vocabulary.Command`)."""
    while True:
        verb = rng.choice(["mg", "mg", "ms", "ms", "md", "ma", "ma"])
        target = rng.randint(2100, 12000) if rng.random() < 0.9 else rng.randint(1500, 2600)
        line = LongLine(rng, verb, stepwise)
        ways = rng.sample(["zero", "tab", "longtok", "spaces", "key"], rng.randint(1, 3))
        if verb == "ms" and rng.random() < 0.3:
            ways.append("datalen")
        share = max(1, target // len(ways))
        for how in ways:
            line.pad(how, max(1, int(share * rng.uniform(0.6, 1.2))))
        text = line.render()
        if len(text) <= LONGEST:
            return Command("long-" + verb + "-" + "+".join(sorted(set(ways))), text, solo=True)
