"""What the terminal shows when a flow run fails: sbx's errors without a traceback, bugs with."""

from __future__ import annotations

import logging
import sys

from sbx.cli_runs import SbxErrorWithoutTraceback
from sbx.errors import NotARepository


def failed_record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "prefect.flow_runs", logging.ERROR, __file__, 1, "Encountered exception", None, info
    )


def test_an_sbx_error_reaches_the_terminal_as_its_message_only() -> None:
    record = failed_record(NotARepository("/srv/nothing"))
    # a handler before the console one (the UI's) already formatted it, traceback and all
    assert "Traceback" in logging.Formatter().format(record)
    assert SbxErrorWithoutTraceback().filter(record)
    shown = logging.Formatter("%(message)s").format(record)
    assert shown == "Encountered exception"


def test_an_unexpected_exception_keeps_its_traceback() -> None:
    record = failed_record(KeyError("bug"))
    assert SbxErrorWithoutTraceback().filter(record)
    shown = logging.Formatter("%(message)s").format(record)
    assert "Traceback" in shown and "KeyError: 'bug'" in shown
