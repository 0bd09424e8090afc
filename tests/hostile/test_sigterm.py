"""SIGTERM ends any sbx command within seconds, undoing what it must (#23 deliverable 2).

Real processes, real signals: ``python -m sbx`` against the session's Prefect test server, a
SIGTERM once the command is inside its work, then the exit is timed from the signal. The bound
is generous (the machine is shared); before the fix ``sbx health`` against a trickling service
ran on until each probe's deadline (minutes) and a stopped backup died by the signal (-15)
without a word.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faults.env_helpers import files_stack

from sbx.repository import Repository

from .conftest import Examples
from .servers import SEEN, hostile_server

SBX = [sys.executable, "-m", "sbx"]
EXIT_BOUND_S = 20.0  # from the signal to the exit


def start_cli(prefect_api: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_api, COLUMNS="200")
    return subprocess.Popen(
        [*SBX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def terminate_when(
    proc: subprocess.Popen[str], inside: Callable[[], bool]
) -> tuple[int, float, str]:
    """SIGTERM once ``inside()`` holds; (exit status, seconds from the signal, stderr)."""
    deadline = time.monotonic() + 240
    while not inside() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.fail(f"the command ended before it was signalled: {proc.communicate()[1][-3000:]}")
    assert inside(), "the command never got inside its work"
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=EXIT_BOUND_S + 100)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, time.monotonic() - signalled, err


def assert_stopped_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"{command}: stopped by SIGTERM (exit 143); undone: "), lines
    assert err.rstrip().endswith(lines[0]), "the stop line is the last line"
    return lines[0]


@pytest.mark.prefect
def test_health_blocked_on_a_trickling_service_ends_on_sigterm(
    prefect_server: str, tmp_path: Path, run_id: str, hostile: Examples
) -> None:
    stack = files_stack(tmp_path / f"sigterm-health-{run_id}")
    with hostile_server() as base:
        # probes may take two minutes each: only the signal can end the round early
        (stack / "sbx.toml").write_text(
            "probe_timeout_s = 120\n[health]\ncompletion_timeout_s = 120\n"
            f'[services.worker]\nurl = "{base}/trickle"\n'
            f'[services.watchdog]\nurl = "{base}/trickle"\n',
            encoding="utf-8",
        )
        SEEN.clear()
        proc = start_cli(prefect_server, "health", "--stack", str(stack), "--no-alerts")
        status, took, err = terminate_when(proc, lambda: "/trickle" in SEEN)
        hostile.tick()
    assert took < EXIT_BOUND_S, f"exit {took:.1f} s after SIGTERM: {err[-2000:]}"
    assert status == 143, err[-3000:]
    assert_stopped_line(err, "sbx health")
    assert "Crashed" in err  # Prefect recorded the run as stopped, not as a success


@pytest.mark.prefect
def test_backup_stopped_by_sigterm_releases_the_repository(
    prefect_server: str, tmp_path: Path, run_id: str, hostile: Examples
) -> None:
    stack = files_stack(tmp_path / f"sigterm-backup-{run_id}")
    # incompressible notes: the capture takes long enough to be stopped in the middle
    for n in range(4):
        (stack / "notes" / f"big-{n}.bin").write_bytes(os.urandom(64 << 20))
    repo = tmp_path / "repo"
    lock = repo / "locks" / "writer.json"
    proc = start_cli(prefect_server, "backup", "--stack", str(stack), "--repo", str(repo))
    status, took, err = terminate_when(proc, lock.exists)
    hostile.tick()
    assert took < EXIT_BOUND_S, f"exit {took:.1f} s after SIGTERM: {err[-2000:]}"
    assert status == 143, err[-3000:]
    line = assert_stopped_line(err, "sbx backup")
    assert line.endswith(f"unlocked {repo}"), line
    # undone: the writer lock is released and no snapshot (whole or partial) is listed
    assert not lock.exists(), "the stopped backup left its writer lock"
    assert Repository.open(repo).list_snapshots() == []


def test_a_stop_is_recognised_also_behind_an_error_raised_while_it_unwound() -> None:
    from prefect.exceptions import TerminationSignal

    from sbx.stopping import Terminated, is_stop

    assert is_stop(Terminated())
    assert is_stop(TerminationSignal(signal=signal.SIGTERM))
    assert not is_stop(TerminationSignal(signal=signal.SIGINT))
    try:
        try:
            raise TerminationSignal(signal=signal.SIGTERM)
        except TerminationSignal:
            raise RuntimeError("the crash report's API call was cut short") from None
    except RuntimeError as exc:
        assert is_stop(exc)  # the context is kept even with "from None"
    assert not is_stop(RuntimeError("a bug"))


def test_undo_is_listed_only_while_a_stop_unwinds() -> None:
    from sbx import stopping

    stopping.note_undone("not during a stop")
    try:
        try:
            raise stopping.Terminated()
        finally:
            stopping.note_undone("started qdrant again")
    except stopping.Terminated:
        pass
    try:  # an error raised while the stop unwound (Prefect's crash report cut short)
        try:
            try:
                raise stopping.Terminated()
            except stopping.Terminated:
                raise RuntimeError("set_state interrupted") from None
        finally:
            stopping.note_undone("unlocked /repo")
    except RuntimeError:
        pass
    assert stopping.stopped_line("sbx backup") == (
        "sbx backup: stopped by SIGTERM (exit 143); undone: started qdrant again; unlocked /repo"
    )


def test_a_stop_does_not_wait_for_a_pools_blocked_probes() -> None:
    """``sbx status`` and the upgrade gate probe in a pool of their own (sbx.stopping's): a
    SIGTERM leaves the probe blocked on its answer behind; an error still waits for it."""
    import threading

    from sbx import stopping

    release = threading.Event()
    previous = signal.signal(signal.SIGTERM, stopping._on_sigterm)
    try:
        started = time.monotonic()
        with pytest.raises(stopping.Terminated), stopping.stoppable_pool(2) as pool:
            blocked = pool.submit(release.wait, 60)  # a probe on a trickling service
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            blocked.result()
        assert time.monotonic() - started < 5, "the stop waited for the blocked probe"
    finally:
        signal.signal(signal.SIGTERM, previous)
        stopping._state["stopping"] = False
        release.set()

    release.clear()
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    with pytest.raises(ValueError), stopping.stoppable_pool(2) as pool:
        pool.submit(release.wait, 60)
        raise ValueError("an error is no stop: the pool is waited for")
    assert time.monotonic() - started >= 0.9
