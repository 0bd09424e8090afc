"""Fixtures of the fault suite: the shared figures and their end-of-run summary."""

from __future__ import annotations

import pytest

from .figures import FIGURES, FaultFigures, report_figures

_FIGURES = FIGURES


@pytest.fixture(scope="session")
def fault_figures() -> FaultFigures:
    """The suite-wide counters; ``fault_figures.add(request.node.name, trials_run=1, ...)``."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report_figures(terminalreporter)
