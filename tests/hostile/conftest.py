"""The hostile-input suite (#23 deliverable 8): generated input for every parser and trickling or
broken servers for every HTTP client, counted into the fault figures as ``hostile_examples``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults.figures import FIGURES, report_figures


class Examples:
    """Counts the inputs a test fed; the total goes to the fault figures."""

    def __init__(self) -> None:
        self.count = 0

    def tick(self, n: int = 1) -> None:
        self.count += n


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Examples]:
    counter = Examples()
    yield counter
    FIGURES.add(request.node.name, hostile_examples=counter.count)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES.hostile_examples:
        report_figures(terminalreporter)
