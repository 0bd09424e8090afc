"""Fixtures of the fault suite: the shared figures and their end-of-run summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .figures import FaultFigures

_FIGURES = FaultFigures()


@pytest.fixture(scope="session")
def fault_figures() -> FaultFigures:
    """The suite-wide counters; ``fault_figures.add(request.node.name, trials_run=1, ...)``."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES.by_test:
        return
    terminalreporter.section("sbx fault suite figures")
    for line in _FIGURES.summary_lines():
        terminalreporter.write_line(line)
    out = os.environ.get("SBX_FAULT_FIGURES")
    if out:
        _FIGURES.write_json(Path(out))
        terminalreporter.write_line(f"figures written to {out}")
