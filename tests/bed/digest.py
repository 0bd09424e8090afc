"""A one-line cause per failed test, for the end of a CI log (``SBX_FAILURE_DIGEST=path``).

A failing property test prints its whole example first (a drawn tree can run to thousands of
lines), and a CI log is often read only at its head and tail: the cause lands in the cut. Each
failed test adds ``nodeid: Type: first line of the message`` here, one line per leaf exception
of an exception group (Hypothesis's FlakyFailure holds the errors it saw), and .ci/run prints
the file in its summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

WIDTH = 400  # characters of a cause kept; the full text stays in the log above


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group holds, flattened; else the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def cause_lines(nodeid: str, exc: BaseException) -> list[str]:
    lines = []
    for leaf in leaves(exc):
        text = str(leaf).strip().splitlines()
        first = text[0] if text else ""
        where = ""
        tb = leaf.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" [{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}]"
        lines.append(f"{nodeid}: {type(leaf).__name__}: {first}"[:WIDTH] + where)
    return lines


def record(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Append the causes of a failed phase of ``item`` to the digest file, when one is set."""
    target = os.environ.get("SBX_FAILURE_DIGEST")
    if not target or call.excinfo is None or call.excinfo.errisinstance(pytest.skip.Exception):
        return
    lines = cause_lines(item.nodeid, call.excinfo.value)
    with Path(target).open("a", encoding="utf-8", errors="backslashreplace") as fh:
        fh.writelines(line.replace("\n", " ") + "\n" for line in lines)
