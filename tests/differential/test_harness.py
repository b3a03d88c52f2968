"""The harness itself: normalisation hides CAS numbers and nothing else, and the whole corpus is
deterministic (memcached against a second memcached gives identical transcripts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.harness import CasNames, Unit, normalise, normalise_line
from tests.differential.run import Target, play, self_check, start_target
from tests.differential.scripts import SCRIPTS


def test_value_line_cas_is_renamed_by_first_appearance() -> None:
    cas = CasNames()
    assert normalise_line(b"VALUE k 0 1 77\r\n", cas) == b"VALUE k 0 1 <cas1>\r\n"
    assert normalise_line(b"VALUE j 0 1 99\r\n", cas) == b"VALUE j 0 1 <cas2>\r\n"
    assert normalise_line(b"VALUE k 0 1 77\r\n", cas) == b"VALUE k 0 1 <cas1>\r\n"
    assert cas.substitute(b"cas k 0 0 1 <C2>\r\n") == b"cas k 0 0 1 99\r\n"


def test_value_line_without_cas_and_data_blocks_untouched() -> None:
    cas = CasNames()
    assert normalise_line(b"VALUE k 0 12\r\n", cas) == b"VALUE k 0 12\r\n"
    units = [Unit(b"VA 5 c12\r\n", b"c1234\r\n"), Unit(b"VALUE c 0 3 5\r\n", b"c99\r\n")]
    assert normalise(units, cas) == b"VA 5 c<cas1>\r\nc1234\r\nVALUE c 0 3 <cas2>\r\nc99\r\n"


def test_meta_only_flag_tokens_are_normalised() -> None:
    cas = CasNames()
    line = b"HD kc12 Oc34 c56 f7 s8 t1000 l1 h1\r\n"
    assert normalise_line(line, cas) == b"HD kc12 Oc34 c<cas1> f7 s8 t~1000 l~0 h1\r\n"
    assert normalise_line(b"VA 999 t999 t-1\r\n", cas) == b"VA 999 t~1000 t-1\r\n"
    assert normalise_line(b"STORED c1\r\n", cas) == b"STORED c1\r\n"
    assert normalise_line(b"12345\r\n", cas) == b"12345\r\n"


@pytest.fixture(scope="module")
def second_direct_target() -> Iterator[Target]:
    target = start_target("memcached")
    yield target
    target.stop()


def test_corpus_is_deterministic_on_memcached(direct_target: Target, second_direct_target: Target) -> None:
    """A vs A must be identical, and no script may time out or leave stray bytes."""
    problems: list[str] = []
    for script in SCRIPTS:
        direct, _, mismatches = play(script, direct_target, second_direct_target)
        problems += self_check(script, direct) + [str(m) for m in mismatches]
    assert not problems, "\n".join(problems)
