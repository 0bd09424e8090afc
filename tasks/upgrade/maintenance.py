"""The maintenance window of an upgrade: alerts of the services it changes are muted meanwhile.

``<stack>/.sbx/maintenance.json`` names the services and the checks that were already failing
when the window opened (read from the health flow's alert state): those keep alerting, since the
upgrade did not cause them. The health flow reads the file (:func:`muted_checks`) and sends no
notice for a muted check; its alert state is left as it was, so a check still failing after the
window alerts on the next run. A window whose process is gone (kill -9) mutes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sbx.processes import boot_id, pid_alive
from tasks.alerts import STATE_FILE, load_state

WINDOW_FILE = Path(".sbx") / "maintenance.json"
log = logging.getLogger("sbx.upgrade")


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    reason: str
    services: list[str]  # check targets (sbx service names)
    already_failing: list[str]  # check ids failing when the window opened: never muted
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    pid: int = Field(default_factory=os.getpid)
    boot_id: str = Field(default_factory=boot_id)

    def active(self) -> bool:
        return self.boot_id == boot_id() and pid_alive(self.pid)


def read_window(stack_dir: Path) -> MaintenanceWindow | None:
    try:
        return MaintenanceWindow.model_validate_json((stack_dir / WINDOW_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def clear_stale_window(stack_dir: Path) -> bool:
    """Remove the window a killed upgrade left (its process gone): it mutes nothing, but it
    must not lie in ``.sbx`` for good. True when one was removed."""
    window = read_window(stack_dir)
    if window is None or window.active():
        return False
    (stack_dir / WINDOW_FILE).unlink(missing_ok=True)
    log.info("removed the maintenance window of %s, left by a killed run", window.reason)
    return True


def muted_checks(stack_dir: Path, check_ids: list[str]) -> frozenset[str]:
    """Of ``check_ids``, those an active window mutes (its services' checks, minus those failing
    before it opened)."""
    window = read_window(stack_dir)
    if window is None or not window.active():
        return frozenset()
    targets = set(window.services)
    return frozenset(
        c
        for c in check_ids
        if c.partition(":")[2] in targets and c not in set(window.already_failing)
    )


@contextmanager
def maintenance_window(
    stack_dir: Path, services: list[str], reason: str, notify: Callable[[str, str], None]
) -> Iterator[MaintenanceWindow]:
    """Open the window (file + notice) for the body; close it (file + notice) afterwards."""
    state = load_state(stack_dir / STATE_FILE)
    failing = sorted(
        check
        for check, memory in state.checks.items()
        if memory.failing and check.partition(":")[2] in services
    )
    window = MaintenanceWindow(reason=reason, services=sorted(services), already_failing=failing)
    path = stack_dir / WINDOW_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(window.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
    names = ", ".join(window.services)
    kept = f"; still alerting (failing before): {', '.join(failing)}" if failing else ""
    notify(f"sbx maintenance started: {names}", f"{reason}. Alerts of {names} are muted{kept}.")
    try:
        yield window
    finally:
        path.unlink(missing_ok=True)
        notify(f"sbx maintenance ended: {names}", f"{reason} is over; alerts of {names} resume.")
