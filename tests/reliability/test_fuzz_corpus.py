"""Replay the fuzz corpus (fuzz/corpus/<target>/) through the parsers' invariants: fast, and it
keeps every input the fuzzer found interesting (crashes it once found included) in the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.harness import TARGETS, check_text, describe

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays_clean(target: str):
    files = sorted((CORPUS / target).iterdir())
    assert len(files) >= 10, f"the {target} corpus is missing"
    for path in files:
        try:
            TARGETS[target](path.read_bytes())
        except AssertionError as exc:
            raise AssertionError(f"{path.name}: {exc}") from None


def test_harness_catches_a_split_dependent_parser(monkeypatch):
    """The harness itself can fail: a parser that forgets its buffer between feeds is caught."""
    from cacheproxy.protocol.text import TextParser

    from fuzz import harness

    class Forgetful:
        """A TextParser that starts afresh at every feed (a wrapper: the parser may be compiled)."""

        def __init__(self, max_item_size: int) -> None:
            self.inner = TextParser(max_item_size)

        def feed(self, data: bytes):
            self.inner = TextParser(self.inner.max_item_size)
            return self.inner.feed(data)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    monkeypatch.setattr(harness, "TextParser", Forgetful)
    with pytest.raises(AssertionError):
        check_text(b"\x04\x01\x00\x05set k 0 0 3\r\nabc\r\nget k\r\n")
    assert describe([]) == []
