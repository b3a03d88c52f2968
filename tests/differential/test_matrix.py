"""The layout matrix: every script of matrix.py, in every layout, with its items in L1, only in L2,
or nowhere, must get the same bytes from the proxy as from memcached (see layouts.py)."""

from __future__ import annotations

import pytest

from tests.differential.harness import Script, compare, run_script
from tests.differential.layouts import LAYOUTS, STATES, LayoutTarget, start_layout
from tests.differential.matrix import DIFFERENCES, ITEMS, MATRIX
from tests.differential.run import self_check


def layout_target(layouts: dict[str, LayoutTarget], layout: str) -> LayoutTarget:
    target = layouts.get(layout)
    if target is not None and not target.alive():
        layouts.pop(layout).stop()
        target = None
    if target is None:
        target = layouts[layout] = start_layout(layout)
    return target


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("script", MATRIX, ids=[s.name for s in MATRIX])
def test_layout_answers_like_memcached(script: Script, layout: str, state: str, direct: LayoutTarget,
                                       layouts: dict[str, LayoutTarget]) -> None:
    play_both(script, layout, state, direct, layouts)


DOCUMENTED = [pytest.param(script, layout, state, id=f"{script.name}-{layout}-{state}",
                           marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
              for script, in_layouts, in_states, why in DIFFERENCES
              for layout in in_layouts for state in in_states]


@pytest.mark.parametrize(("script", "layout", "state"), DOCUMENTED)
def test_documented_difference(script: Script, layout: str, state: str, direct: LayoutTarget,
                               layouts: dict[str, LayoutTarget]) -> None:
    """The differences listed in docs/memcached-behaviour.md still exist (strict xfail)."""
    play_both(script, layout, state, direct, layouts)


def play_both(script: Script, layout: str, state: str, direct: LayoutTarget,
              layouts: dict[str, LayoutTarget]) -> None:
    proxy = layout_target(layouts, layout)
    transcripts = []
    for target in (direct, proxy):
        target.reset()
        target.seed(ITEMS, state)
        transcripts.append(run_script(script, target.addr))
    assert not self_check(script, transcripts[0]), "the script itself is wrong"
    mismatches = compare(script, *transcripts)
    assert not mismatches, "\n".join(str(m) for m in mismatches)
    assert proxy.alive(), "the proxy died"
