"""Age of the newest snapshot against the RPO, read cheaply from the snapshot ids."""

from __future__ import annotations

from datetime import UTC, datetime

from blocks.config import SbxConfig
from sbx.errors import NotARepository, SbxError
from sbx.repository import Repository
from tasks.health.checks import Check, Outcome, failing, info, ok
from tasks.schedules import scheduled_backup


def plan(config: SbxConfig, repository: str) -> list[Check]:
    return [Check("backup", "newest-snapshot", lambda: _observe(config, repository))]


def snapshot_time(snapshot_id: str) -> datetime:
    """Snapshot ids start with their UTC creation time (``YYYYMMDDTHHMMSSZ-…``, format.py)."""
    return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _observe(config: SbxConfig, location: str) -> Outcome:
    try:
        # one listing of snapshots/: no manifest is read
        ids = Repository.open(location).list_snapshots()
    except NotARepository:
        scheduled = scheduled_backup(config.stack_dir)
        if scheduled is None:
            return info(f"no repository at {location} yet (the first 'sbx backup' makes it)")
        return failing(
            f"no repository at {location}, though {scheduled} is scheduled for this stack",
            "Run 'sbx backup' now, and check in the Prefect UI why the scheduled backup has "
            "not made one (is 'sbx serve' running?).",
        )
    except SbxError as exc:
        return failing(f"cannot list snapshots: {exc}", "Check the repository's storage.")
    backup = "Run 'sbx backup' now and check why the nightly backup did not run (Prefect UI)."
    if not ids:
        return failing(f"{location} holds no complete snapshot", backup)
    newest = ids[-1]
    age_s = (datetime.now(UTC) - snapshot_time(newest)).total_seconds()
    rpo_s = config.health.rpo_hours * 3600
    observed = f"newest snapshot {newest} is {age_s / 3600:.1f} h old (RPO {rpo_s / 3600:g} h)"
    if age_s > rpo_s:
        return failing(observed, backup, snapshot_age_seconds=age_s, snapshots=float(len(ids)))
    return ok(observed, snapshot_age_seconds=age_s, snapshots=float(len(ids)))
