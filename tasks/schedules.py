"""What ``sbx serve`` registered for a stack, kept beside it: ``<stack>/.sbx/schedules.json``.

A file, not a Prefect query: the health check reads it on every round without an API call
(and on a box whose server is down). It says whether backups are scheduled, so that "no
repository yet" is news on a fresh box and a failure once the nightly backup should have made
one.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

SCHEDULES_FILE = Path(".sbx") / "schedules.json"
BACKUP_FLOW = "backup-stack"


def record_schedules(stack_dir: Path, deployments: list[tuple[str, list[str]]], api: str) -> Path:
    """Write which deployments (full name, schedules) now act on ``stack_dir``; atomic."""
    path = stack_dir / SCHEDULES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "schema_version": 1,
        "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "api": api,
        "deployments": [{"name": name, "schedules": crons} for name, crons in deployments],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def scheduled_backup(stack_dir: Path) -> str | None:
    """The backup deployment with a schedule that acts on ``stack_dir``, if one was registered
    (an unreadable file counts as none: this only sharpens a health message)."""
    try:
        data = json.loads((stack_dir / SCHEDULES_FILE).read_text(encoding="utf-8"))
        deployments = data["deployments"]
        for entry in deployments:
            name, crons = entry["name"], entry["schedules"]
            if isinstance(name, str) and name.startswith(f"{BACKUP_FLOW}/") and crons:
                return name
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None
