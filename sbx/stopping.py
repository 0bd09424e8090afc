"""SIGTERM stops an sbx command the way Ctrl-C would: undo runs, one line, exit 143.

:func:`install` (the CLI entry, main thread, once) makes SIGTERM raise :class:`Terminated` in
the main thread, so every ``finally`` between the signal and the entry runs: a stopped service
is started again, a drill's scratch project is torn down, temporary files go. While a flow runs,
Prefect's engine holds SIGTERM itself (``capture_sigterm``): it raises ``TerminationSignal``
there, marks the run Crashed once the flow's ``finally`` blocks have run, then hands the signal
back to this handler, which raises :class:`Terminated` out of the flow call.

The command then ends with one line on stderr (:func:`stopped_line`: what was undone, from
:func:`note_undone`) and exit status 143 (128 + SIGTERM), without waiting for worker threads
still blocked in an answer (a health probe on a trickling service ends only at its deadline):
:func:`exit_now` leaves with ``os._exit`` once the main thread has unwound. An error raised
while a stop unwinds (an API call of Prefect's crash handling cut short) counts as the stop
(:func:`is_stop` follows the exception's context). A second SIGTERM cuts the undo short
(outside a flow it ends the process at once, inside one Prefect raises again); the next sbx
command finishes what was left (``tasks/leftovers``). Critical sections (``signals_deferred``
in tasks/services.py) hold the signal until they are done.

Pure Python, no Prefect: the CLI installs it before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import NoReturn

EXIT_STATUS = 128 + signal.SIGTERM  # 143: what a shell reports for a process ended by SIGTERM


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (a BaseException, like KeyboardInterrupt: no
    ``except Exception`` swallows it; not a KeyboardInterrupt: click would print "Aborted!")."""


_state: dict[str, bool] = {"stopping": False}
_undone: list[str] = []


def install() -> None:
    """SIGTERM raises :class:`Terminated` in the main thread from now on (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    if _state["stopping"]:
        print(
            "sbx: stopped by a second SIGTERM before the undo was done: the next sbx command "
            "finishes what was left",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_STATUS)
    _state["stopping"] = True
    raise Terminated()


def is_stop(exc: BaseException) -> bool:
    """A stop by signal: :class:`Terminated`, or Prefect's ``TerminationSignal`` for SIGTERM,
    also as the cause or context of what was raised while it unwound (an API call of Prefect's
    crash handling that the signal cut short fails with an error of its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Terminated):
            return True
        if type(current).__name__ == "TerminationSignal" and (
            getattr(current, "signal", None) == signal.SIGTERM
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def note_undone(what: str) -> None:
    """Record ``what`` (e.g. "started open-webui again") for the stop line, when the caller's
    ``finally`` runs because of a stop (a SIGTERM or Ctrl-C in flight); otherwise nothing."""
    in_flight = sys.exc_info()[1]
    # an error raised while the stop unwound (a part's capture cut short) is the stop too
    if in_flight is not None and (not isinstance(in_flight, Exception) or is_stop(in_flight)):
        _undone.append(what)


def record_undone(what: str) -> None:
    """Record ``what`` for the stop line unconditionally: for a step that caught the stop
    itself to undo first (an upgrade's rollback) and raises it again after."""
    _undone.append(what)


def stopped_line(command: str = "sbx") -> str:
    """The one line a command stopped by SIGTERM ends with."""
    undone = "; ".join(_undone) if _undone else "nothing of this command needed undoing"
    return f"{command}: stopped by SIGTERM (exit {EXIT_STATUS}); undone: {undone}"


def exit_now() -> NoReturn:
    """Flush stdout and stderr, then end the process with 143 without joining threads."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(EXIT_STATUS)


@contextlib.contextmanager
def stoppable_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool waited for as usual, except while a stop unwinds: then the tasks still
    running (read-only probes, each blocked until its deadline) are left behind, not joined."""
    pool = ThreadPoolExecutor(workers)
    try:
        yield pool
    except BaseException as exc:
        pool.shutdown(wait=isinstance(exc, Exception), cancel_futures=True)
        raise
    pool.shutdown(wait=True)
