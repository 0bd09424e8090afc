"""Restore runbook: into a directory, or — verified first, then swapped — into the live stack."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from flows.runbook import flow_config, run_name
from sbx.durable import is_no_space
from sbx.errors import ConfigError, NoSpace, RestoreUnhealthy, SbxError, StackError
from sbx.repository import Repository, RestoreReport, SnapshotManifest
from tasks.changelog import LOG_FILE, append_change, keep_live_log, room_for_changes
from tasks.leftovers.finish import observe_stack
from tasks.reports import artifact_key, publish_markdown
from tasks.repository import open_repository
from tasks.restore.files import restore_files, start_services, wait_healthy
from tasks.restore.in_place import (
    Swapped,
    check_swappable,
    plan_swap,
    remove_staging,
    swap_back,
    swap_in,
)


class RestoreOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    target: str
    in_place: bool
    restored: RestoreReport
    swapped: Swapped | None = None
    healthy_after_s: float | None = None


@flow(name="restore-snapshot", flow_run_name=lambda: run_name("restore"), log_prints=False)
def restore_snapshot(
    snapshot: str = "latest",
    to: str | None = None,
    in_place: bool = False,
    parts: list[str] | None = None,
    force: bool = False,
    repo: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> RestoreOutcome:
    """Restore a snapshot: into ``to`` (a new or empty directory), or ``in_place``.

    Every byte is verified before anything is swapped in. In place: affected services are
    stopped, the live data is kept aside as ``<path>.pre-restore-<time>``, the services are
    started and health-checked, and the old data is swapped back if the stack stays unhealthy.
    """
    if (to is None) == (not in_place):
        raise ConfigError("Give exactly one of --to DIR or --in-place for a restore.")
    config = flow_config(stack, config_file)
    repository = open_repository(config, repo)
    manifest = repository.load_snapshot(snapshot)
    log = get_run_logger()
    if to is not None:
        report = restore_files(repository, manifest, Path(to), parts, force=force)
        log.info("restored %s into %s: %d files", manifest.id, report.target, report.files)
        outcome = RestoreOutcome(
            snapshot_id=manifest.id, target=report.target, in_place=False, restored=report
        )
        _publish(outcome)
        return outcome

    check_swappable(manifest, parts, config)
    status, _ = observe_stack(config)
    if status is None:
        raise StackError(
            "Docker is not reachable, so services cannot be stopped for an in-place restore. "
            "Start Docker, or restore with --to DIR and move the data yourself."
        )
    # the change log's room first: a full .sbx refuses before the live data is touched
    with room_for_changes(config.stack_dir):
        staging = config.stack_dir / ".sbx" / f"restore-{manifest.id}"
        remove_staging(staging)  # a killed earlier attempt may have left one
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        try:
            report = _staged(repository, manifest, staging, parts)
            plan = plan_swap(manifest, parts, config, staging)
            swapped = swap_in(plan, config, status, staging, stamp)
            if plan.configs:
                start_services(config, status.project)
            waited = wait_healthy(config, config.restore_health_timeout_s)
            if waited is None:
                swap_back(swapped, plan, config, status, stamp)
                append_change(
                    config.stack_dir,
                    action="restore-rolled-back",
                    target="stack",
                    before={"parts": report.parts},
                    after={"snapshot": manifest.id, "failed": "stack not healthy after the swap"},
                )
                raise RestoreUnhealthy(
                    f"The stack did not become healthy after restoring {manifest.id}; the "
                    "previous data was swapped back (restored data kept as "
                    f"*.failed-restore-{stamp}). Check 'sbx status' and the services' logs."
                )
        finally:
            remove_staging(staging)
        for live, aside in swapped.moved:
            if live == str(LOG_FILE) and aside:
                keep_live_log(config.stack_dir, config.stack_dir / aside, manifest.id)
        append_change(
            config.stack_dir,
            action="restore",
            target="stack",
            before={"kept_as": [a for live, a in swapped.moved if a and live != str(LOG_FILE)]},
            after={"snapshot": manifest.id, "parts": report.parts},
        )
    outcome = RestoreOutcome(
        snapshot_id=manifest.id,
        target=str(config.stack_dir),
        in_place=True,
        restored=report,
        swapped=swapped,
        healthy_after_s=waited,
    )
    _publish(outcome)
    return outcome


def _staged(
    repository: Repository, manifest: SnapshotManifest, staging: Path, parts: list[str] | None
) -> RestoreReport:
    """The snapshot restored into the staging folder; a full disk there is said as such."""
    try:
        return restore_files(repository, manifest, staging, parts)
    except SbxError as exc:
        if not is_no_space(exc):
            raise
        raise NoSpace(staging, "the live data was not touched") from exc


def _publish(outcome: RestoreOutcome) -> None:
    r = outcome.restored
    where = "in place" if outcome.in_place else f"to {r.target}"
    lines = [
        f"# Restore of {outcome.snapshot_id} {where}",
        "",
        f"Parts {', '.join(r.parts)}: {r.files} files, {r.dirs} dirs, {r.symlinks} symlinks, "
        f"{r.hardlinks} hard links, {r.bytes} bytes, verified, in {r.duration_s:.1f} s.",
    ]
    lines += ["", *(f"- warning: {warning}" for warning in r.warnings)] if r.warnings else []
    if outcome.swapped:
        lines += ["", "| live path | previous data kept as |", "|---|---|"]
        lines += [f"| {live} | {aside or '(new)'} |" for live, aside in outcome.swapped.moved]
        lines += [f"| (side copy) | {side} |" for side in outcome.swapped.side]
        if outcome.healthy_after_s is not None:
            lines += ["", f"Stack healthy {outcome.healthy_after_s:.1f} s after the swap."]
    publish_markdown(
        artifact_key("restore", outcome.snapshot_id[:15]),
        "\n".join(lines) + "\n",
        f"Restore of {outcome.snapshot_id}",
    )
