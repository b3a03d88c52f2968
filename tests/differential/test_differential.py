"""Every script of the corpus must get the same bytes from the proxy as from memcached itself."""

from __future__ import annotations

import pytest

from tests.differential.harness import Script
from tests.differential.run import Target, play, self_check
from tests.differential.scripts import SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_proxy_answers_like_memcached(script: Script, direct_target: Target, proxy_target: Target) -> None:
    direct, _, mismatches = play(script, direct_target, proxy_target)
    assert not self_check(script, direct), "the script itself is wrong"
    assert not mismatches, "\n".join(str(m) for m in mismatches)
    assert proxy_target.alive(), "the proxy died"
