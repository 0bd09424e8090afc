"""Stopping a service for a cold copy and always starting it again — even after a SIGKILL.

`stopped_service` writes a marker under `<stack>/.sbx/stopped/` BEFORE it stops a container and
removes it only after the container runs again. `restart_left_stopped` (called at the start of
every sbx command that touches the stack) starts whatever a killed run left stopped: a marker
whose writer process is gone means nobody else will.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sbx.durable import write_state
from sbx.errors import DockerError
from sbx.processes import boot_id, pid_alive
from sbx.stopping import note_undone
from tasks.clients.docker_engine import DockerEngine

MARKER_DIR = Path(".sbx") / "stopped"
STOP_GRACE_S = 5  # beyond a stop's timeout: dockerd's kill and clean-up


class StopMarker(BaseModel):
    model_config = ConfigDict(frozen=True)

    container_id: str
    container: str
    service: str
    project: str
    pid: int
    boot_id: str
    reason: str
    stopped_at: float
    stop_timeout_s: int = 30  # how long dockerd may take to stop it (then it kills)


def _marker_path(stack_dir: Path, container_id: str) -> Path:
    return stack_dir / MARKER_DIR / f"{container_id[:24]}.json"


def _write_marker(path: Path, marker: StopMarker) -> None:
    """Before the stop: a full disk refuses here, the service still running, nothing left."""
    outcome = f"{marker.service} was not stopped and nothing was copied"
    write_state(path, marker.model_dump_json(), outcome)


@contextmanager
def stopped_service(
    engine: DockerEngine,
    stack_dir: Path,
    project: str,
    service: str,
    reason: str,
    *,
    timeout_s: int = 30,
) -> Iterator[bool]:
    """Stop ``service`` for the body, start it again afterwards whatever happens.

    Yields whether it was running (a stopped service is left as it was).
    """
    info = engine.service_container(project, service)
    if not info.running:
        yield False
        return
    marker = StopMarker(
        container_id=info.id,
        container=info.name,
        service=service,
        project=project,
        pid=os.getpid(),
        boot_id=boot_id(),
        reason=reason,
        stopped_at=time.time(),
        stop_timeout_s=timeout_s,
    )
    path = _marker_path(stack_dir, info.id)
    _write_marker(path, marker)
    try:
        # A SIGTERM that lands inside the stop call would abandon it while dockerd goes on
        # stopping: the start in `finally` would then find it still running and do nothing, and
        # the container would end up stopped. So the signal waits until the stop has completed.
        with signals_deferred():
            engine.stop(info.id, timeout_s=timeout_s)
        yield True
    finally:
        with signals_deferred():
            # raises if it cannot: the marker stays for the next command
            start_through_outage(engine, info.id)
            path.unlink(missing_ok=True)
            note_undone(f"started {info.name} again")  # listed when a stop is in flight


#: waits between tries to start a container again while the daemon does not answer (a dockerd
#: restart takes seconds; ~30 s in all before the marker is left for the next command)
START_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0)


def start_through_outage(engine: DockerEngine, container_id: str) -> None:
    """Start the container, retrying while the error is transient (the daemon restarting)."""
    for delay in (*START_RETRY_DELAYS_S, None):
        try:
            engine.start(container_id)
            return
        except DockerError as exc:
            if delay is None or not exc.retryable:
                raise
            time.sleep(delay)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back until the block is done, then deliver them.

    A signal mask is not enough: it covers the main thread only, and a process-directed SIGTERM
    then goes to another thread (Prefect runs several), whose C handler still makes the Python
    handler run in the main thread at once. So the Python handlers are swapped for one that
    records the signal, and what arrived is raised again once the block is done (main thread
    only: handlers can only be set there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def restart_left_stopped(engine: DockerEngine, stack_dir: Path) -> list[str]:
    """Start containers that a killed sbx run left stopped; returns their names.

    Callers undo a swap of restored data that the killed run left half done first
    (tasks/leftovers/finish.py), so that the services start on their previous data, whole.
    """
    restarted = []
    for path in sorted((stack_dir / MARKER_DIR).glob("*.json")):
        try:
            marker = StopMarker.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a torn marker: nothing we can act on
            continue
        if marker.boot_id == boot_id() and pid_alive(marker.pid):
            continue  # its run is still going and will start the container itself
        try:
            current = engine.inspect(marker.container_id)
        except DockerError:
            path.unlink(
                missing_ok=True
            )  # container removed since (e.g. compose down): nothing to do
            continue
        if current.get("State", {}).get("Running"):
            current = _stop_settled(engine, marker, current)
        if not current.get("State", {}).get("Running"):
            engine.start(marker.container_id)
            restarted.append(marker.container)
        path.unlink(missing_ok=True)
    return restarted


def _stop_settled(
    engine: DockerEngine, marker: StopMarker, current: dict[str, Any]
) -> dict[str, Any]:
    """The container's state once a stop that the killed run asked for has ended.

    dockerd goes on with a stop request after its client died: a container still running right
    after the kill may stop a moment later, and would then stay stopped. Unless it was started
    again after the marker was written (the run restarted it, then died before removing the
    marker), wait for the stop to end, at most until its timeout has passed.
    """
    until = marker.stopped_at + marker.stop_timeout_s + STOP_GRACE_S
    while current.get("State", {}).get("Running") and time.time() < until:
        if _started_at(current) > marker.stopped_at:
            break
        time.sleep(0.2)
        current = engine.inspect(marker.container_id)
    return current


def _started_at(inspected: dict[str, Any]) -> float:
    raw = str(inspected.get("State", {}).get("StartedAt", ""))
    try:  # RFC 3339 with nanoseconds: "2026-11-27T03:59:04.123456789Z"
        whole, _, fraction = raw.rstrip("Z").partition(".")
        started = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
        return started + float(f"0.{fraction or 0}")
    except ValueError:
        return 0.0
