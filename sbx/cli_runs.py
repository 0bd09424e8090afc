"""How flow runs started by an ``sbx`` command behave in this process (not the worker's runs).

- No flow-run heartbeats. Prefect's heartbeat thread sleeps in 1 s steps and the engine joins
  it when a run ends, so every command waited 0–1 s (0.7 s measured) after its work was done,
  for heartbeats that nothing here reads: sbx has no zombie-run automation and finishes a
  killed run's leftovers itself. Runs started by the worker (``sbx serve``) are separate
  processes and keep them.
- One error line on the terminal for sbx's own errors. Their messages say what failed and what
  to do next, and ``sbx`` prints that message last as ``error: …``; Prefect's engine also
  logged it twice above (its ERROR line with the whole stack, then the run's ``Finished in
  state Failed(…)`` line), for flow and task runs alike. The run's log in the Prefect UI keeps
  all of it; ``sbx --verbose`` (``SBX_VERBOSE=1``) keeps it on the terminal too, and an
  unexpected exception (a bug) always does. The same for a stop by SIGTERM
  (sbx/stopping.py): the command ends with its one line.
- On a terminal, no INFO line per flow and task state: the run's link (``View at …``), the
  warnings and sbx's own summary. At 80 columns each of Prefect's lines folds in two, and a
  backup printed about twenty of them above its table. ``--verbose`` keeps them; output that
  is not a terminal (a pipe, a log file, the tests) keeps them too.
- The server's default result storage is asked for once. Prefect asks for it each time it sets
  up a result store when no storage block is configured: three requests for a run with two
  tasks (``GET /admin/storage``), each answered the same within one command.
- No CA bundle loaded to reach a plain-HTTP API. Each Prefect client builds a TLS context and
  loads the whole CA bundle into it (~30 ms of CPU), three per command (the engine's client,
  the log and event workers' clients), whatever the API's scheme. For an ``http://`` API
  (sbx's local server) the context is one that trusts no CA: never used, and were it used,
  it would refuse every certificate. For an ``https://`` API the contexts for a CA file are
  built once and shared, as httpx shares its default one (Prefect never changes them).
- Flow parameters that are already JSON (all of sbx's: paths and names as strings, numbers,
  flags, lists of names) are sent as they are. Prefect passes each one through FastAPI's
  ``jsonable_encoder``, which gives back the same values, but importing FastAPI for it cost
  0.13-0.3 s a command. Any other value still goes through Prefect's own serialization.

Prefect itself is imported here (~1,300 modules) with the garbage collector off: imports make
almost no garbage, yet the collector ran ~300 times during them, walking the new objects again
and again (0.15-0.2 s of a command on a quiet 2-core box, 0.5-0.7 s at load 14). What they
made lives as long as the process: it is then frozen out of later collections.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import ssl
import sys
import types
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from sbx.errors import SbxError
from sbx.prefect_import import prepare_prefect_import
from sbx.stopping import is_stop

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.flows import Flow

_HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")
_heartbeats_off = ExitStack()  # the settings context, entered once and held for the process


def configure_cli_runs() -> None:
    """Apply all three; idempotent (the leftovers hook and the command each call it)."""
    with _imports_without_collections():  # the first of these imports Prefect
        _no_flow_heartbeats()
        _no_console_tracebacks_for_sbx_errors()
        _json_parameters_as_they_are()
        _result_storage_asked_once()
        _one_ssl_context_per_ca_file()


_held = [False]  # whether hold_collections() switched the collector off


def hold_collections() -> None:
    """From the command's start (sbx.cli's main) until its start-up is done: its imports and
    configuration make almost no garbage, yet ~100 young and one full collection ran in it
    (30-40 ms). Released once Prefect is imported, or when the door (sbx/cli/runner.py) was
    passed without it; a command that never reaches either is a short one."""
    if gc.isenabled():
        gc.disable()
        _held[0] = True


def release_collections() -> None:
    """What start-up made stays for good (later collections skip it); collections resume."""
    gc.freeze()
    if _held[0]:
        _held[0] = False
        gc.enable()


@contextmanager
def _imports_without_collections() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        prepare_prefect_import()
        yield
    finally:
        gc.freeze()  # what the imports made stays for good: later collections skip it
        if enabled:
            gc.enable()
        release_collections()


def _no_flow_heartbeats() -> None:
    """Unless the operator set a frequency. The setting cannot be switched off through the
    environment (it takes only numbers), hence a settings context, entered once.

    The context holds a copy of the current settings with that one field changed, what
    ``temporary_settings`` would make, but without validating every setting and reading the
    environment and profile files again (0.07-0.16 s of each command)."""
    if any(v in os.environ for v in _HEARTBEAT_VARIABLES):
        return
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    settings = context.settings
    if settings.flows.heartbeat_frequency is None:
        return  # off already
    flows = settings.flows.model_copy(update={"heartbeat_frequency": None})
    off = settings.model_copy(update={"flows": flows})
    _heartbeats_off.enter_context(SettingsContext(profile=context.profile, settings=off))


#: the engine's end-of-run line: "Finished in state Failed('Flow run encountered an exception:
#: NotARepository: …')" (task runs: "…encountered an exception NotARepository: …")
_FAILED_WITH = re.compile(r"encountered an exception:? (\w+):")


def _sbx_error_names() -> set[str]:
    names, todo = set(), [SbxError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


_RUN_LINK = "View at "  # the engine's "View at <UI>/runs/flow-run/<id>" line


def _on_a_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class SbxErrorWithoutTraceback(logging.Filter):
    """Keeps Prefect's lines about an :class:`SbxError` or a stop by SIGTERM off the terminal
    (``sbx`` prints its one line last); with ``SBX_VERBOSE=1`` keeps them, without the traceback.

    Installed on Prefect's console handler, which sits on the root logger and so is the last
    handler a record reaches: the run's API log handler has already sent it with its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        verbose = os.environ.get("SBX_VERBOSE") == "1"
        if not verbose and record.levelno < logging.WARNING and _on_a_terminal():
            # an operator's terminal: the run's link, warnings and sbx's own summary, not a
            # line per task state (80 columns fold each in two); the run's log keeps them all
            return _RUN_LINK in str(record.msg)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, SbxError) or is_stop(exc)):
            record.exc_info = None
            record.exc_text = None  # a formatter may have cached the formatted traceback
            return verbose
        if (
            not verbose
            and record.levelno >= logging.INFO
            and "Finished in state" in str(record.msg)
        ):
            match = _FAILED_WITH.search(record.getMessage())
            if match and match[1] in _sbx_error_names():
                return False
        return True


def _no_console_tracebacks_for_sbx_errors() -> None:
    # Prefect configures logging when its top-level API (prefect.main: flow, task) is first
    # imported, and later calls only update levels (incremental): set it up now so the filter
    # has a handler to sit on. Through that import, not ensure_logging_setup(): prefect.main
    # sets logging up again whatever was done before, and each set-up costs 0.1-0.25 s (it
    # renders every Prefect setting into the logging template); the flow imports it anyway.
    import prefect.main  # noqa: F401
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # a no-op after prefect.main's
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, SbxErrorWithoutTraceback) for f in handler.filters
        ):
            handler.addFilter(SbxErrorWithoutTraceback())


class _NotJson(Exception):
    """A parameter value that is not plain JSON: Prefect serializes it."""


def _plain_json(value: object) -> object:
    """A copy of ``value`` when it is plain JSON (what ``jsonable_encoder`` would return)."""
    if value is None or type(value) in (str, bool, int, float):  # not subclasses: enums
        return value
    if type(value) is list:
        return [_plain_json(item) for item in value]
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: _plain_json(item) for key, item in value.items()}
    raise _NotJson


def _json_parameters_as_they_are() -> None:
    from prefect.flows import Flow

    prefect_serialize = Flow.serialize_parameters
    if getattr(prefect_serialize, "sbx_plain_json", False):
        return

    def serialize_parameters(self: Flow[Any, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            return {key: _plain_json(value) for key, value in parameters.items()}
        except _NotJson:
            return prefect_serialize(self, parameters)

    serialize_parameters.sbx_plain_json = True  # type: ignore[attr-defined]
    Flow.serialize_parameters = serialize_parameters  # type: ignore[method-assign]


def _result_storage_asked_once() -> None:
    from prefect import results

    ask = results._read_server_default_result_storage_block_id
    if getattr(ask, "sbx_once", False):
        return
    answers: dict[str, UUID | None] = {}

    def ask_once() -> UUID | None:
        from prefect.settings import get_current_settings

        api = str(get_current_settings().api.url)
        if api not in answers:
            answers[api] = ask()
        return answers[api]

    ask_once.sbx_once = True  # type: ignore[attr-defined]
    results._read_server_default_result_storage_block_id = ask_once


class _SharedTlsContexts:
    """Prefect's client module's view of ``ssl`` (see the module doc)."""

    def __init__(self, real: types.ModuleType) -> None:
        self._real = real
        self._made: dict[tuple[str, bool], ssl.SSLContext] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        cafile = kwargs.get("cafile")
        if args or set(kwargs) != {"cafile"} or not isinstance(cafile, str):
            return self._real.create_default_context(*args, **kwargs)  # type: ignore[no-any-return]
        from prefect.settings import get_current_settings

        plain_http = str(get_current_settings().api.url or "").startswith("http://")
        key = (cafile, plain_http)
        if key not in self._made:
            # PROTOCOL_TLS_CLIENT: certificates required and host names checked, no CA trusted
            self._made[key] = (
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if plain_http
                else self._real.create_default_context(cafile=cafile)
            )
        return self._made[key]


def _one_ssl_context_per_ca_file() -> None:
    from prefect.client import orchestration

    names = vars(orchestration)  # its module globals: what its ``ssl.…`` calls look up
    if not isinstance(names["ssl"], _SharedTlsContexts):
        names["ssl"] = _SharedTlsContexts(names["ssl"])
