"""The search: generate cases, play each against memcached and the proxy, and keep what differs.

A difference is played twice more (timing noise does not repeat), shrunk by delta debugging to
the fewest commands that still show it (then to one send, then to one step where no CAS is
carried between steps), and recorded once per signature: the shrunk commands' kinds and the two
differing answers' shapes (digits folded). Differences memcached makes on purpose are classed
(``drop-on-close``, ``cut-on-close``, ``answered-early``, ``long-line``, and for the chunked layout
``over-limit``: see :mod:`.compare`) and counted apart from new findings.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from tests.differential.layouts import TWO_LEVELS, LayoutTarget, start_direct, start_layout

from .binary_gen import binary_sequence
from .compare import Difference, classify, first_difference, shape
from .meta_gen import any_meta, long_meta, sensible_meta
from .play import SPLITS, Case, Transcript, play, render
from .text_gen import admin, arithmetic, deletion, malformed, retrieval, storage, touch
from .vocabulary import Command, Generator, pick

SENT_KEPT = 300_000  # bytes of a finding's commands kept in its record


def text_generators(long_keys: bool) -> tuple[tuple[float, Generator], ...]:
    return ((4, sensible_meta), (6, partial(retrieval, long_keys=long_keys)), (7, storage), (3, arithmetic),
            (2, deletion), (1.5, touch), (1, admin), (1.5, partial(malformed, long_keys=long_keys)), (10, any_meta),
            (5, long_meta))


def random_case(rng: random.Random, binary_share: float, long_keys: bool, two_levels: bool) -> Case:
    """1-8 commands of one protocol; a solo command (a long meta line) makes a case of its own."""
    protocol = "binary" if rng.random() < binary_share else "text"
    stepwise = rng.random() < 0.4
    split = random.Random(rng.random()).choice(SPLITS)
    n = rng.randint(1, 8)
    if protocol == "binary":
        commands = binary_sequence(rng, stepwise, n)
    else:
        commands = []
        for _ in range(n):
            command = pick(rng, *text_generators(long_keys))(rng, stepwise)
            if command.solo:
                commands, split = [command], "all"
                break
            commands.append(command)
        if two_levels:  # me shows L1's own metadata, not the item's (docs/memcached-behaviour.md)
            commands = [c for c in commands if not c.text.startswith(b"me ")] or [Command("mn", b"mn\r\n")]
    return Case(tuple(commands), protocol, stepwise, split, rng.randint(0, 1 << 30))


def shrink(case: Case, differs: Callable[[Case], bool]) -> Case:
    """The smallest case found that still DIFFERS: commands removed by delta debugging (halves,
    then quarters... down to single commands), then sent whole, then in one step where no CAS is
    carried from one step to the next."""
    commands, chunks = list(case.commands), 2
    while len(commands) >= 2:
        size = max(1, len(commands) // chunks)
        for i in range(0, len(commands), size):
            fewer = commands[:i] + commands[i + size:]
            if fewer and differs(replace(case, commands=tuple(fewer))):
                commands, chunks = fewer, max(chunks - 1, 2)
                break
        else:
            if size == 1:
                break
            chunks = min(len(commands), chunks * 2)
    case = replace(case, commands=tuple(commands))
    if case.split != "all" and differs(replace(case, split="all")):
        case = replace(case, split="all")
    carries_cas = any(b"<C" in c.text or isinstance(c.binary.get("cas"), str) for c in commands)
    if case.stepwise and not carries_cas and differs(replace(case, stepwise=False)):
        case = replace(case, stepwise=False)
    return case


@dataclass
class Search:
    """Memcached and the proxy in LAYOUT, started fresh and reset before every case; findings by
    signature, written to OUT/found-LAYOUT.json as they come."""

    layout: str
    out: Path
    binary_share: float = 0.35
    long_keys: bool = False
    per_signature: int = 2  # differences of one raw signature examined before it is only counted
    direct: LayoutTarget = field(init=False)
    proxy: LayoutTarget = field(init=False)
    found: dict[tuple, dict] = field(default_factory=dict)
    seen: dict[tuple, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"sequences": 0, "differences": 0, "noise": 0})

    def __post_init__(self) -> None:
        self.two_levels = self.layout in TWO_LEVELS
        self.chunked = self.layout == "chunked"
        self.direct = start_direct()
        try:
            self.proxy = start_layout(self.layout)
        except Exception:
            self.direct.stop()
            raise

    def stop(self) -> None:
        self.proxy.stop()
        self.direct.stop()

    def both(self, case: Case) -> tuple[Transcript, Transcript]:
        transcripts = []
        for target in (self.direct, self.proxy):
            target.reset()
            transcripts.append(play(target.addr, case, self.two_levels))
        if not self.proxy.alive():
            transcripts[1].append([b"<proxy died>"])
            self.proxy.stop()
            self.proxy = start_layout(self.layout)
        return transcripts[0], transcripts[1]

    def differs(self, case: Case, want: Callable[[Case, Difference, Transcript, Transcript], bool]) -> bool:
        """CASE shows the difference WANT recognises, twice in a row."""
        for _ in range(2):
            a, b = self.both(case)
            d = first_difference(a, b)
            if d is None or not want(case, d, a, b):
                return False
        return True

    def examine(self, case: Case, a: Transcript, b: Transcript, d: Difference) -> None:
        kind = classify(a, b, case, self.chunked)
        raw_signature = (kind, case.protocol, shape(d[2]), shape(d[3]))
        self.seen[raw_signature] = self.seen.get(raw_signature, 0) + 1
        if self.seen[raw_signature] > self.per_signature:
            return

        def want(case2: Case, d2: Difference, a2: Transcript, b2: Transcript) -> bool:
            """The same class, and for a new one the same shapes of the two answers."""
            same_shapes = (shape(d2[2]), shape(d2[3])) == raw_signature[2:]
            return classify(a2, b2, case2, self.chunked) == kind and (kind != "new" or same_shapes)

        if not self.differs(case, want):
            self.counts["noise"] += 1
            return
        small = shrink(case, lambda candidate: self.differs(candidate, want))
        a, b = self.both(small)
        d2 = first_difference(a, b)
        if d2 is None:
            self.counts["noise"] += 1
            return
        signature = (kind, tuple(c.label for c in small.commands), shape(d2[2]), shape(d2[3]))
        sent = render(small.commands, [], [])  # the bytes (CAS references as never-seen values)
        entry = self.found.setdefault(signature, {
            "class": kind, "layout": self.layout, "protocol": small.protocol, "stepwise": small.stepwise,
            "split": small.split, "seed": small.seed, "commands": [repr(c) for c in small.commands],
            "memcached": [[repr(u) for u in s] for s in a], "proxy": [[repr(u) for u in s] for s in b],
            "first_difference": {"step": d2[0], "answer": d2[1], "memcached": repr(d2[2]), "proxy": repr(d2[3])},
            "sent_hex": sent.hex() if len(sent) <= SENT_KEPT else None, "count": 0,
        })
        entry["count"] += 1
        if entry["count"] == 1:
            print(f"{kind}: {entry['commands']}\n  memcached {d2[2][:160]!r}\n  proxy     {d2[3][:160]!r}",
                  flush=True)
            self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"found-{self.layout}.json").write_text(json.dumps(list(self.found.values()), indent=1))

    def run(self, seed: int, sequences: int, seconds: float) -> int:
        """Up to SEQUENCES cases from SEED within SECONDS; the number of new (unexplained) findings."""
        rng = random.Random(seed)
        deadline = time.monotonic() + seconds
        while self.counts["sequences"] < sequences and time.monotonic() < deadline:
            self.counts["sequences"] += 1
            case = random_case(rng, self.binary_share, self.long_keys, self.two_levels)
            try:
                a, b = self.both(case)
                d = first_difference(a, b)
                if d is not None:
                    self.counts["differences"] += 1
                    self.examine(case, a, b, d)
            except Exception:  # a harness failure on one case must not end the search
                traceback.print_exc()
            if self.counts["sequences"] % 500 == 0:
                print(f"{self.counts} signatures {len(self.found)}", flush=True)
        self.save()
        new = sum(1 for e in self.found.values() if e["class"] == "new")
        print(f"layout {self.layout} seed {seed}: {self.counts}; {len(self.found)} signatures, {new} new", flush=True)
        return new
