"""What the terminal shows when a flow run fails: sbx's errors without a traceback, bugs with."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_an_sbx_error_stays_off_the_terminal_but_verbose_shows_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SBX_VERBOSE", raising=False)
    record = failed_record(NotARepository("/srv/nothing"))
    # a handler before the console one (the UI's) already formatted it, traceback and all
    assert "Traceback" in logging.Formatter().format(record)
    assert not SbxErrorWithoutTraceback().filter(record)  # sbx prints `error: …` once
    monkeypatch.setenv("SBX_VERBOSE", "1")
    record = failed_record(NotARepository("/srv/nothing"))
    assert SbxErrorWithoutTraceback().filter(record)
    shown = logging.Formatter("%(message)s").format(record)
    assert shown == "Encountered exception"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("Finished in state Failed('Flow run encountered an exception: NotARepository: x')", False),
        ("Finished in state Failed('Task run encountered an exception QdrantError: x')", False),
        ("Finished in state Failed('Flow run encountered an exception: KeyError: x')", True),
        ("Finished in state Completed()", True),
    ],
)
def test_the_failed_state_line_of_an_sbx_error_stays_off_the_terminal(
    monkeypatch: pytest.MonkeyPatch, message: str, shown: bool
) -> None:
    monkeypatch.delenv("SBX_VERBOSE", raising=False)
    record = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, message, None, None)
    assert SbxErrorWithoutTraceback().filter(record) is shown


def test_an_unexpected_exception_keeps_its_traceback() -> None:
    record = failed_record(KeyError("bug"))
    assert SbxErrorWithoutTraceback().filter(record)
    shown = logging.Formatter("%(message)s").format(record)
    assert "Traceback" in shown and "KeyError: 'bug'" in shown


@pytest.mark.prefect
def test_a_failed_command_prints_its_error_once(prefect_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SBX_")}
    env.update(PREFECT_API_URL=prefect_server, COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "verify", "--repo", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    both = done.stdout + done.stderr
    assert done.returncode == 2, both
    assert both.count("is not an sbx repository") == 1, both  # was 3: ERROR, state, error:
    assert "error: " in done.stderr and "| ERROR" not in both and "Traceback" not in both


PARAMETERS_PROBE = """
import sys
from pathlib import Path
from prefect import flow
from prefect.flows import Flow
from sbx.cli_runs import _json_parameters_as_they_are

@flow
def runbook(**kwargs: object) -> None: ...

prefects = Flow.serialize_parameters
_json_parameters_as_they_are()
_json_parameters_as_they_are()  # idempotent: wraps once
params = {"stack": "/srv/stack", "repo": None, "sample": 0.5, "parts": ["models", "qdrant"],
          "keep": 3, "dry_run": True, "tags": {"why": ["nightly"]}}
sent = runbook.serialize_parameters(params)
assert "fastapi" not in sys.modules, "FastAPI was imported for plain JSON"
assert sent == prefects(runbook, params) == params, sent
assert sent["parts"] is not params["parts"]  # a copy, as Prefect's
assert runbook.serialize_parameters({"to": Path("/x")}) == {"to": "/x"}  # not JSON: Prefect's
print("OK")
"""


def test_plain_json_parameters_are_sent_as_prefect_would_without_importing_fastapi() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PARAMETERS_PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip().endswith("OK"), done.stderr


def test_start_up_runs_without_collections_until_released() -> None:
    import gc

    from sbx.cli_runs import hold_collections, release_collections

    assert gc.isenabled()
    try:
        hold_collections()
        assert not gc.isenabled()  # imports and configuration: no collections
        release_collections()
        assert gc.isenabled()  # the command's own work collects as usual
        gc.disable()  # switched off by someone else: hold and release leave it off
        hold_collections()
        release_collections()
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
