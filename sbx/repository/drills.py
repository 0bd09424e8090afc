"""Drill marks: the record, kept in the repository itself, that a snapshot was restored and ran.

``drills/<snapshot-id>/<drill-id>.json`` (docs/repository.md, "Drill marks"): one small JSON
object per restore drill, passed or failed, written with the storage's atomic write-once ``put``
and never overwritten (each drill has its own id). Prune keeps the newest snapshot with a passed
mark (invariant 6); the drill report draws its RTO trend from the marks.

A mark of a newer ``schema_version`` is not parsed, but its key still names a snapshot: when its
JSON says ``"passed": true`` that snapshot counts as drill-passed, so an older sbx never prunes
what a newer one vouched for.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sbx.errors import ObjectMissing
from sbx.repository.format import SNAPSHOT_ID_RE
from sbx.repository.storage import Storage

log = logging.getLogger(__name__)

DRILLS_PREFIX: Final = "drills/"
DRILL_SCHEMA_VERSION: Final = 1


class DrillMark(BaseModel):
    """What one drill of one snapshot showed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = DRILL_SCHEMA_VERSION
    drill_id: str = Field(description="YYYYMMDDTHHMMSSZ-<6 hex>, UTC: marks sort by time.")
    snapshot_id: str
    passed: bool
    started_at: datetime
    finished_at: datetime
    rto_s: float | None = Field(
        default=None, description="Restore start to a healthy scratch stack; None if never."
    )
    phases: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    checks: int = Field(default=0, description="Health and data checks run.")
    failed: list[str] = Field(default_factory=list, description="Failed checks, one line each.")
    host: str = ""
    sbx_version: str = ""


def new_drill_id(now: datetime) -> str:
    utc = now.astimezone(UTC)
    return f"{utc:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def mark_key(snapshot_id: str, drill_id: str) -> str:
    return f"{DRILLS_PREFIX}{snapshot_id}/{drill_id}.json"


def write_mark(storage: Storage, mark: DrillMark) -> str:
    """Store ``mark`` (atomic, write-once: a key is never reused); returns its key."""
    key = mark_key(mark.snapshot_id, mark.drill_id)
    storage.put(key, mark.model_dump_json(indent=1).encode())
    return key


def list_marks(storage: Storage) -> list[DrillMark]:
    """Every readable mark of this sbx's schema, oldest drill first; others are skipped."""
    marks = []
    for key in storage.list(DRILLS_PREFIX):
        raw = _read(storage, key)
        if raw is None or raw.get("schema_version") != DRILL_SCHEMA_VERSION:
            continue
        try:
            marks.append(DrillMark.model_validate(raw))
        except ValidationError as exc:
            log.warning("ignoring drill mark %s in %s: %s", key, storage.location, exc)
    return sorted(marks, key=lambda m: m.drill_id)


def passed_snapshots(storage: Storage) -> set[str]:
    """Snapshot ids with at least one passed drill (any schema version, see module doc)."""
    passed = set()
    for key in storage.list(DRILLS_PREFIX):
        snapshot_id = key.removeprefix(DRILLS_PREFIX).split("/", 1)[0]
        if not SNAPSHOT_ID_RE.match(snapshot_id) or snapshot_id in passed:
            continue
        raw = _read(storage, key)
        if raw is not None and raw.get("passed") is True:
            passed.add(snapshot_id)
    return passed


def newest_drill_passed(storage: Storage, existing: list[str]) -> str | None:
    """The newest of ``existing`` snapshot ids that passed a drill, or None."""
    passed = passed_snapshots(storage)
    candidates = [snapshot_id for snapshot_id in existing if snapshot_id in passed]
    return max(candidates) if candidates else None


def _read(storage: Storage, key: str) -> dict[str, object] | None:
    if not key.endswith(".json"):
        return None
    try:
        raw = json.loads(storage.get(key))
    except ObjectMissing:
        return None  # pruned between list and get
    except ValueError:
        log.warning("ignoring drill mark %s in %s: not JSON", key, storage.location)
        return None
    return raw if isinstance(raw, dict) else None
