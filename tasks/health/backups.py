"""Age of the newest snapshot against the RPO, read cheaply from the snapshot ids: of the box's
repository, and of its off-box copy when ``offbox.url`` is set (an encrypted remote: listing it
decrypts the names, so the box needs its age identity, as ``sbx copy`` does)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from blocks.config import SbxConfig
from sbx.errors import NotARepository, SbxError
from sbx.repository import Repository
from tasks.health.checks import Check, Outcome, failing, info, ok
from tasks.schedules import scheduled_backup

#: botocore attempts per request of the off-box check (the copy itself uses 10)
HEALTH_S3_ATTEMPTS = 2


def plan(config: SbxConfig, repository: str) -> list[Check]:
    checks = [Check("backup", "newest-snapshot", lambda: _observe(config, repository))]
    if config.offbox.url:
        checks.append(Check("backup", "offbox-copy", lambda: _observe_offbox(config)))
    return checks


def snapshot_time(snapshot_id: str) -> datetime:
    """Snapshot ids start with their UTC creation time (``YYYYMMDDTHHMMSSZ-…``, format.py)."""
    return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def older_than_rpo(ids: Sequence[str], rpo_hours: float, where: str) -> str | None:
    """What to report when the newest of ``ids`` is older than the RPO (None: it is not)."""
    if not ids:
        return None
    age_h = (datetime.now(UTC) - snapshot_time(ids[-1])).total_seconds() / 3600
    if age_h <= rpo_hours:
        return None
    return (
        f"the newest snapshot in {where} ({ids[-1]}) is {age_h:.1f} h old (RPO "
        f"{rpo_hours:g} h): run 'sbx copy' on the box, and check in the Prefect UI why the "
        "nightly copy did not send a newer one"
    )


def _observe(config: SbxConfig, location: str) -> Outcome:
    try:
        # one listing of snapshots/: no manifest is read
        ids = Repository.open(location).list_snapshots()
    except NotARepository:
        return _no_repository(config, location, "'sbx backup'")
    except SbxError as exc:
        return failing(f"cannot list snapshots: {exc}", "Check the repository's storage.")
    backup = "Run 'sbx backup' now and check why the nightly backup did not run (Prefect UI)."
    return _age(config, location, ids, backup)


def _observe_offbox(config: SbxConfig) -> Outcome:
    from tasks.clients.s3.storage import connect
    from tasks.repository import open_encrypted

    url = config.offbox.url or ""
    try:
        # few attempts: an S3 outage must not hold up the round (every 5 minutes) for minutes
        inner = connect(url, config.offbox, max_attempts=HEALTH_S3_ATTEMPTS)
        ids = Repository.open(open_encrypted(config, inner)).list_snapshots()
    except NotARepository:
        return _no_repository(config, url, "'sbx copy'")
    except SbxError as exc:
        return failing(
            f"cannot list the off-box copy's snapshots: {exc}",
            "Check the S3 credentials and the age identity the box uses for 'sbx copy'.",
        )
    copy = (
        "Run 'sbx copy' now, and check in the Prefect UI why the nightly copy (backup with "
        "offbox) did not send a snapshot."
    )
    return _age(config, url, ids, copy)


def _no_repository(config: SbxConfig, location: str, first: str) -> Outcome:
    scheduled = scheduled_backup(config.stack_dir)
    if scheduled is None:
        return info(f"no repository at {location} yet (the first {first} makes it)")
    return failing(
        f"no repository at {location}, though {scheduled} is scheduled for this stack",
        f"Run {first} now, and check in the Prefect UI why the scheduled backup has "
        "not made one (is 'sbx serve' running?).",
    )


def _age(config: SbxConfig, location: str, ids: Sequence[str], next_step: str) -> Outcome:
    if not ids:
        return failing(f"{location} holds no complete snapshot", next_step)
    newest = ids[-1]
    age_s = (datetime.now(UTC) - snapshot_time(newest)).total_seconds()
    rpo_s = config.health.rpo_hours * 3600
    observed = f"newest snapshot {newest} is {age_s / 3600:.1f} h old (RPO {rpo_s / 3600:g} h)"
    measures = {"snapshot_age_seconds": age_s, "snapshots": float(len(ids))}
    if age_s > rpo_s:
        return failing(observed, next_step, **measures)
    return ok(observed, **measures)
