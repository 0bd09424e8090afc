"""Progress of long steps, for whoever watches: the CLI draws it, scheduled runs ignore it.

Flows run in the CLI's own process, so tasks report to the reporter installed in this process
(a rich progress bar in the terminal); without one, reports go nowhere. Flow parameters stay
plain JSON (a callback cannot be a parameter: Prefect stores parameters in the API).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def begin(self, step: str, total_steps: int) -> None: ...
    def done(self, step: str, summary: str) -> None: ...


class _Silent:
    def begin(self, step: str, total_steps: int) -> None:
        pass

    def done(self, step: str, summary: str) -> None:
        pass


_reporter: Reporter = _Silent()


def reporter() -> Reporter:
    return _reporter


@contextmanager
def reporting_to(new: Reporter) -> Iterator[None]:
    global _reporter  # noqa: PLW0603 — one process-wide reporter, installed by the CLI
    previous, _reporter = _reporter, new
    try:
        yield
    finally:
        _reporter = previous
