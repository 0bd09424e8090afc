"""Verify runbook: re-read and re-hash what snapshots stored; fail naming part and path."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.errors import DamageFound
from sbx.repository import VerifyReport
from sbx.repository.locations import RepositoryLocation
from tasks.backup.verify import verify_snapshots
from tasks.health.backups import older_than_rpo
from tasks.reports import artifact_key, publish_markdown, verify_markdown
from tasks.repository import open_repository


@flow(name="verify-repository", flow_run_name=lambda: run_name("verify"), log_prints=False)
def verify_repository(
    snapshot: str | None = "latest",
    repo: str | None = None,
    sample: float | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> VerifyReport:
    """Re-read every object a snapshot references and re-hash every file (snapshot=None: all).

    Fails naming the part and path of anything damaged or missing. ``sample`` checks a random
    fraction of the objects instead of all of them.
    """
    config = flow_config(stack, config_file)
    repository = open_repository(config, repo)
    report = verify_snapshots(repository, snapshot, sample)
    log = get_run_logger()
    if RepositoryLocation.parse(repository.location).is_s3:
        # an off-box copy: is it recent? (the box's own repository: 'sbx health' says)
        stale = older_than_rpo(
            repository.list_snapshots(), config.health.rpo_hours, repository.location
        )
        if stale:
            log.warning("%s", stale)
            report = report.model_copy(update={"warnings": [*report.warnings, stale]})
    log.info(
        "verified %d snapshot(s): %d objects, %d files, %d damaged",
        len(report.snapshots),
        report.objects_checked,
        report.files_checked,
        len(report.damaged),
    )
    publish_markdown(
        artifact_key("verify", config.stack_dir.name),  # <verb>-<stack>, as every report
        verify_markdown(report),
        f"Verification of {repository.location}",
    )
    if not report.ok:
        raise DamageFound(report)
    return report
