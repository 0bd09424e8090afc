"""Restore runbook: into a directory, or — verified first, then swapped — into the live stack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from flows.runbook import flow_config, run_name
from sbx.durable import is_no_space
from sbx.errors import (
    ConfigError,
    NoSpace,
    RestoreRefused,
    RestoreUnhealthy,
    SbxError,
    StackError,
)
from sbx.repository import Repository, RestoreReport, SnapshotManifest
from tasks.changelog import (
    LOG_FILE,
    append_change,
    keep_live_history,
    keep_live_log,
    room_for_changes,
)
from tasks.leftovers.finish import observe_stack
from tasks.reports import artifact_key, publish_markdown
from tasks.repository import open_repository
from tasks.restore.carry import carry_across, remove_carried
from tasks.restore.files import restore_files, start_services, wait_healthy
from tasks.restore.in_place import (
    Swapped,
    SwapPlan,
    check_swappable,
    plan_swap,
    remove_staging,
    swap_back,
    swap_in,
)
from tasks.restore.kept import (
    RESTORES,
    CleanupReport,
    new_stamp,
    parse_span,
    remove_if_empty,
    remove_old_restores,
)
from tasks.restore.qdrant_swap import recover_previous_collections
from tasks.restore.versions import check_data_versions
from tasks.status import StackStatus
from tasks.upgrade.journal import UPGRADE_LOG


class RestoreOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    target: str
    in_place: bool
    restored: RestoreReport
    swapped: Swapped | None = None
    kept: list[str] = []  # every path the restore left for the operator, relative to the stack
    healthy_after_s: float | None = None
    cleaned: CleanupReport | None = None  # older kept restores removed after this one


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

    In place, data is refused when its service now runs an older version than the one that
    wrote it (named in the message), unless ``force``.

    Every byte is verified before anything is swapped in. In place: affected services are
    stopped, the live data is moved aside into ``<stack>/.sbx/restores/<UTC time>/`` (listed in
    the outcome and the change log), the services are started and health-checked, and the old
    data is swapped back if the stack stays unhealthy. Kept restores older than ``[restore]
    keep_days`` are removed at the end (tasks/restore/kept.py).
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
        _publish(outcome, config.stack_dir.name)
        return outcome

    check_swappable(manifest, parts, config)
    status, _ = observe_stack(config)
    if status is None:
        raise StackError(
            "Docker is not reachable, so services cannot be stopped for an in-place restore. "
            "Start Docker, or restore with --to DIR and move the data yourself."
        )
    # data never into an older image than wrote it, unless --force (tasks/restore/versions.py)
    check_data_versions(manifest, parts, config, status, force=force)
    # the change log's room first: a full .sbx refuses before the live data is touched
    with room_for_changes(config.stack_dir):
        staging = config.stack_dir / ".sbx" / f"restore-{manifest.id}"
        remove_staging(staging)  # a killed earlier attempt may have left one
        stamp = new_stamp(config.stack_dir)
        swapped = plan = None
        try:
            report = _staged(repository, manifest, staging, parts)
            plan = carry_across(plan_swap(manifest, parts, config, staging), staging)
            swapped = swap_in(plan, config, status, staging, stamp)
            if plan.configs:
                start_services(config, status.project)
            waited = wait_healthy(config, config.restore_health_timeout_s)
            if waited is None:
                _swap_back(swapped, plan, config, status, manifest.id, report.parts)
        finally:
            remove_staging(staging)
            if plan is not None:
                remove_carried(plan)
            if swapped is None:  # nothing was moved aside
                remove_if_empty(config.stack_dir, stamp)
        history_aside = []
        for live, aside in swapped.moved:
            if live == str(LOG_FILE) and aside:
                history_aside.append(aside)  # the live change log goes back: history, not state
                keep_live_log(config.stack_dir, config.stack_dir / aside, manifest.id)
            elif live == str(UPGRADE_LOG) and aside:
                history_aside.append(aside)  # so does the upgrade journal's closed entries
                keep_live_history(config.stack_dir / live, config.stack_dir / aside, manifest.id)
        kept = [p for p in swapped.kept_paths(config.stack_dir) if p not in history_aside]
        append_change(
            config.stack_dir,
            action="restore",
            target="stack",
            before={"kept_as": kept},
            after={"snapshot": manifest.id, "parts": report.parts},
        )
    cleaned = _clean_old_restores(config, swapped.stamp)
    outcome = RestoreOutcome(
        snapshot_id=manifest.id,
        target=str(config.stack_dir),
        in_place=True,
        restored=report,
        swapped=swapped,
        kept=kept,
        healthy_after_s=waited,
        cleaned=cleaned,
    )
    _publish(outcome, config.stack_dir.name)
    return outcome


def _swap_back(
    swapped: Swapped,
    plan: SwapPlan,
    config: SbxConfig,
    status: StackStatus,
    snapshot_id: str,
    parts: list[str],
) -> NoReturn:
    """The restored stack is unhealthy: the previous data, configuration and collections go
    back, the change log says so, and the restore fails."""
    stamp = swapped.stamp
    swap_back(swapped, plan, config, status, stamp)
    if plan.configs:  # the containers run the restored configuration: recreate them
        start_services(config, status.project)
    if swapped.qdrant_aside:
        recover_previous_collections(
            plan.qdrant_service, swapped.qdrant_aside, config, config.restore_health_timeout_s
        )
    append_change(
        config.stack_dir,
        action="restore-rolled-back",
        target="stack",
        before={"parts": parts},
        after={
            "snapshot": snapshot_id,
            "failed": "stack not healthy after the swap",
            "kept_in": str(RESTORES / stamp),
        },
    )
    raise RestoreUnhealthy(
        f"The stack did not become healthy after restoring {snapshot_id}; the previous data "
        f"was swapped back (restored data kept in .sbx/restores/{stamp}/). Check 'sbx status' "
        "and the services' logs."
    )


def _clean_old_restores(config: SbxConfig, spare: str) -> CleanupReport | None:
    """Kept restores older than the retention period go; never the one just made (``spare``).
    The restore is done: a cleanup that cannot run is a warning, not a failed restore."""
    log = get_run_logger()
    try:
        cleaned = remove_old_restores(config, timedelta(days=config.restore.keep_days), spare=spare)
    except (RestoreRefused, OSError) as exc:
        log.warning("old kept restores not removed: %s; run 'sbx restore cleanup' later", exc)
        return None
    for gone in cleaned.removed:
        log.info("removed %s (older than %d days)", gone.path, config.restore.keep_days)
    return cleaned


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


@flow(name="cleanup-restores", flow_run_name=lambda: run_name("restore-cleanup"), log_prints=False)
def cleanup_kept_restores(
    older_than: str | None = None,
    dry_run: bool = False,
    stack: str | None = None,
    config_file: str | None = None,
) -> CleanupReport:
    """Remove the data in-place restores kept (``.sbx/restores/<time>/``, and ``.sbx-restores/``
    beside parts on other file systems) older than ``older_than`` (``7d``; default: ``[restore]
    keep_days``). Refused while a swap journal is open."""
    config = flow_config(stack, config_file)
    span = parse_span(older_than) if older_than else timedelta(days=config.restore.keep_days)
    report = remove_old_restores(config, span, dry_run=dry_run)
    if report.removed and not dry_run:
        append_change(
            config.stack_dir,
            action="restore-cleanup",
            target="stack",
            before={"removed": [item.path for item in report.removed]},
            after={"freed_bytes": report.freed_bytes},
        )
    return report


def _publish(outcome: RestoreOutcome, stack_name: str) -> None:
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
        lines += ["", "Everything kept: " + ", ".join(outcome.kept) + "."] if outcome.kept else []
        if outcome.healthy_after_s is not None:
            lines += ["", f"Stack healthy {outcome.healthy_after_s:.1f} s after the swap."]
    publish_markdown(
        artifact_key("restore", stack_name),
        "\n".join(lines) + "\n",
        f"Restore of {outcome.snapshot_id}",
    )
