"""The figures object itself: totals add up per test, peak RSS is a maximum, typos are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .figures import FaultFigures


def test_counts_add_up_and_rss_keeps_the_peak(tmp_path: Path) -> None:
    figures = FaultFigures()
    figures.add("a", trials_run=3, partial_snapshots=0, peak_rss_mib=120.5)
    figures.add("b", trials_run=2, bad_inputs_tried=4, bad_inputs_refused=4, peak_rss_mib=80)
    assert figures.totals()["trials_run"] == 5
    assert figures.peak_rss_mib == 120.5
    assert "bad inputs tried / refused: 4 / 4" in figures.summary_lines()
    figures.write_json(tmp_path / "f.json")
    assert json.loads((tmp_path / "f.json").read_text())["by_test"]["b"]["trials_run"] == 2


def test_unknown_figure_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown fault figure"):
        FaultFigures().add("a", trails_run=1)


def test_harness_examples_are_counted_per_property() -> None:
    figures = FaultFigures()
    assert "harness examples run: 0 (harness not run)" in figures.summary_lines()
    figures.add("test_trees", harness_examples=30)
    figures.add("test_mutation", harness_examples=40)
    assert "harness examples run: 70 (test_mutation 40, test_trees 30)" in figures.summary_lines()


def test_hostile_examples_are_counted_and_printed() -> None:
    figures = FaultFigures()
    assert "hostile inputs tried: 0" in figures.summary_lines()
    figures.add("test_proxy_lines", hostile_examples=200)
    figures.add("test_verdict_lines", hostile_examples=50)
    assert "hostile inputs tried: 250" in figures.summary_lines()
