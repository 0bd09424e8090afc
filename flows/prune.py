"""Prune runbook: forget snapshots outside the retention policy, then collect their objects."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.repository import PruneReport
from sbx.repository.retention import describe_policy, with_overrides
from tasks.backup.prune import plan_prune, prune_snapshots
from tasks.reports import artifact_key, prune_markdown, publish_markdown
from tasks.repository import open_repository


@flow(name="prune-repository", flow_run_name=lambda: run_name("prune"), log_prints=False)
def prune_repository(
    keep_last: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    dry_run: bool = False,
    repo: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> PruneReport:
    """Apply the retention policy: sbx.toml's [retention], or — when any keep-* argument is
    given — only the keep-* arguments (the configured policy is then not used at all).

    Applied per part: never deletes the newest snapshot, the last complete copy of any part,
    the newest one that passed a restore drill (``sbx drill``) nor one whose manifest cannot be
    read; refuses a policy that would delete every snapshot, and with ``dry_run`` only reports
    what would go, in the same words.
    """
    config = flow_config(stack, config_file)
    overrides = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
    }
    # validated: a negative keep-* is refused (exit 2), never taken as "keep none"
    policy = with_overrides(config.retention, overrides)
    log = get_run_logger()
    from_flags = any(value is not None for value in overrides.values())
    log.info("%s", describe_policy(policy, from_flags=from_flags))
    repository = open_repository(config, repo)
    plan = plan_prune(repository, policy, config)
    report = prune_snapshots(repository, plan, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for snapshot_id in report.removed:
        log.info("%s snapshot %s", verb, snapshot_id)
    log.info(
        "%s %d unreferenced objects (%d bytes)",
        verb,
        report.gc.objects_deleted,
        report.gc.bytes_freed,
    )
    for snapshot_id, until in report.locked.items():
        log.warning("left snapshot %s: S3 Object Lock holds it until %s", snapshot_id, until)
    if report.gc.objects_locked:
        log.warning(
            "left %d unreferenced objects that S3 Object Lock holds (until %s at the latest)",
            report.gc.objects_locked,
            report.gc.locked_until,
        )
    if report.gc.skipped:
        log.warning("%s", report.gc.skipped)
    publish_markdown(
        artifact_key("prune", config.stack_dir.name),
        prune_markdown(report),
        f"Prune of {repository.location}",
    )
    return report
