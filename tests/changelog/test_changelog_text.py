"""The change log as one line per change (tasks/changelog_text.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sbx.cli.lines import shorten
from tasks.changelog import ChangeEntry
from tasks.changelog_text import flat, what


def _entry(before: object, after: object, action: str = "config") -> ChangeEntry:
    return ChangeEntry(seq=1, time="2026-12-07T05:00:00Z", action=action, target="stack",
                       before=before, after=after, prev_hash="0", hash="1")  # fmt: skip


@given(text=st.text(max_size=300), width=st.integers(min_value=1, max_value=200))
def test_shorten_keeps_both_ends_within_the_width(text: str, width: int) -> None:
    cut = shorten(text, width)
    assert len(cut) <= width
    if len(text) <= width:
        assert cut == text
    elif width >= 3:
        assert cut[0] == text[0] and cut[-1] == text[-1] and "…" in cut


def test_values_read_as_words_not_python() -> None:
    assert flat({"parts": ["configs", "webui"], "ok": True}) == "parts configs, webui, ok yes"
    assert flat(None) == "-" and flat([]) == "none"
    digest = "sha256:" + "f" * 64
    assert flat(f"127.0.0.1:5000/a/b/worker@{digest}") == "worker@sha256:" + "f" * 12


def test_what_changed_in_one_sentence() -> None:
    swap = _entry({"served_model_name": "old"}, {"served_model_name": "new"}, "model-swap")
    assert what(swap) == "old → new"
    assert what(_entry({"key": "k1"}, None)) == "removed key k1"
    assert what(_entry(None, {"file": "x"})) == "file x"
    assert what(_entry({"a": 1}, {"a": 2})) == "a 2 (before: a 1)"
