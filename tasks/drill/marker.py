"""A drill's record of itself, so that a killed drill's scratch project is torn down later.

``sbx drill`` writes ``<stack>/.sbx/drills/<drill id>.json`` before it creates anything (the
scratch directory, the compose project) and removes it once its ``finally`` has torn the
scratch project down. A SIGKILL skips that ``finally``: the marker stays, naming the project,
the scratch directory and the writer's pid and boot. :func:`abandoned` lists the markers whose
writer is gone; the next sbx command tears those projects down (``tasks/leftovers/``). A drill
whose process still runs is never touched.

No Prefect, no Docker: ``tasks.leftovers.left_behind`` reads this before either is imported.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sbx.durable import write_state
from sbx.processes import boot_id, pid_alive

MARKER_DIR = Path(".sbx") / "drills"


class DrillMarker(BaseModel):
    """Who runs a drill, and what it may have left: its compose project and scratch directory."""

    model_config = ConfigDict(frozen=True)

    drill_id: str
    project: str
    root: Path  # the scratch directory (removed with the project)
    pid: int
    boot_id: str
    started_at: float

    def writer_alive(self) -> bool:
        """True while the drill's process still runs (same boot)."""
        return self.boot_id == boot_id() and pid_alive(self.pid)


def marker_path(stack_dir: Path, drill_id: str) -> Path:
    return stack_dir / MARKER_DIR / f"{drill_id}.json"


def record_drill(stack_dir: Path, drill_id: str, project: str, root: Path) -> Path:
    """Write the marker (atomically, synced) before the drill creates anything."""
    marker = DrillMarker(
        drill_id=drill_id,
        project=project,
        root=root,
        pid=os.getpid(),
        boot_id=boot_id(),
        started_at=time.time(),
    )
    path = marker_path(stack_dir, drill_id)
    write_state(path, marker.model_dump_json(), "the drill created nothing")  # no temporary left
    return path


def forget_drill(stack_dir: Path, drill_id: str) -> None:
    """The drill's scratch project is gone: its marker goes too."""
    marker_path(stack_dir, drill_id).unlink(missing_ok=True)


def abandoned(stack_dir: Path) -> list[DrillMarker]:
    """Markers of drills whose process is gone (a torn marker, naming nothing, is removed)."""
    found = []
    directory = stack_dir / MARKER_DIR
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        try:
            marker = DrillMarker.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # torn before it named anything: nothing was started
            continue
        if not marker.writer_alive():
            found.append(marker)
    return found
