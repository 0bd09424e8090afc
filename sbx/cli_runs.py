"""How flow runs started by an ``sbx`` command behave in this process (not the worker's runs).

- No flow-run heartbeats. Prefect's heartbeat thread sleeps in 1 s steps and the engine joins
  it when a run ends, so every command waited 0–1 s (0.7 s measured) after its work was done,
  for heartbeats that nothing here reads: sbx has no zombie-run automation and finishes a
  killed run's leftovers itself. Runs started by the worker (``sbx serve``) are separate
  processes and keep them.
- No traceback on the terminal for sbx's own errors. Their messages say what failed and what to
  do next, and ``sbx`` prints that message last; Prefect's engine also logged the whole stack
  above it, 20 lines an operator had to read past to find one. The run's log in the Prefect UI
  keeps the traceback, and an unexpected exception (a bug) keeps it on the terminal too.
  Nor for a stop by SIGTERM (sbx/stopping.py): the command ends with its one line.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack

from sbx.errors import SbxError
from sbx.stopping import is_stop

_HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")
_heartbeats_off = ExitStack()  # the settings context, entered once and held for the process


def configure_cli_runs() -> None:
    """Apply both; idempotent (the leftovers hook and the command each call it)."""
    _no_flow_heartbeats()
    _no_console_tracebacks_for_sbx_errors()


def _no_flow_heartbeats() -> None:
    """Unless the operator set a frequency. The setting cannot be switched off through the
    environment (it takes only numbers), hence a settings context, entered once."""
    if any(v in os.environ for v in _HEARTBEAT_VARIABLES):
        return
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if get_current_settings().flows.heartbeat_frequency is None:
        return  # off already
    _heartbeats_off.enter_context(
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    )


class SbxErrorWithoutTraceback(logging.Filter):
    """Drops the traceback of a record whose exception is an :class:`SbxError` or a stop by
    SIGTERM (message kept).

    Installed on Prefect's console handler, which sits on the root logger and so is the last
    handler a record reaches: the run's API log handler has already sent it with its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, SbxError) or is_stop(exc)):
            record.exc_info = None
            record.exc_text = None  # a formatter may have cached the formatted traceback
        return True


def _no_console_tracebacks_for_sbx_errors() -> None:
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    # Prefect configures logging when its top-level API is first imported, and later calls
    # only update levels (incremental): set it up now so the filter has a handler to sit on
    ensure_logging_setup()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, SbxErrorWithoutTraceback) for f in handler.filters
        ):
            handler.addFilter(SbxErrorWithoutTraceback())
