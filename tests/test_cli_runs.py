"""What the terminal shows when a flow run fails: sbx's errors without a traceback, bugs with."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from bed.local_prefect import copy_files_stack

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


def _on_a_pty(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``command`` with stderr on a pseudo-terminal (stdout a pipe); (status, stderr)."""
    controller, terminal = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side was closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=terminal, env=env,
                              timeout=300, check=False)  # fmt: skip
    finally:
        os.close(terminal)
    reader.join(10)
    os.close(controller)
    return done.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.prefect
def test_a_terminal_gets_the_run_link_and_the_summary_not_a_line_per_task(
    prefect_server: str, tmp_path: Path
) -> None:
    stack = copy_files_stack(tmp_path / "stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SBX_")}
    env.update(PREFECT_API_URL=prefect_server, COLUMNS="80", NO_COLOR="1")
    command = [sys.executable, "-m", "sbx", "backup", "--stack", str(stack),
               "--repo", str(tmp_path / "repo")]  # fmt: skip
    status, shown = _on_a_pty(command, env)
    assert status == 0, shown
    assert "View at http" in shown, shown  # the run in the UI, the audit trail
    assert "Task run" not in shown and "Beginning flow run" not in shown, shown
    assert "part configs:" not in shown, shown  # sbx's INFO lines: the summary says it
    assert "agent-configs" in shown and "→" in shown, shown  # the summary itself
    status, verbose = _on_a_pty([*command[:3], "--verbose", *command[3:]], env)
    assert status == 0 and "Task run 'capture-configs'" in verbose, verbose


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
