"""The hostile-input suite (#23) counts its examples with the fault figures and prints them."""

from __future__ import annotations

import pytest
from faults.figures import report_figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report_figures(terminalreporter)
