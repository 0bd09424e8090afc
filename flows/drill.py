"""Restore drill runbook: prove a snapshot restores and runs, beside the live stack, untouched."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version

from prefect import flow, get_run_logger

from blocks.config import ConsistencyMethod, SbxConfig
from flows.runbook import flow_config, run_name
from sbx.durable import is_no_space
from sbx.errors import ConfigError, DrillFailed, NoSpace, SbxError
from sbx.repository import Repository, SnapshotManifest
from sbx.repository.drills import DrillMark, list_marks, new_drill_id, write_mark
from tasks.drill.data import check_databases, check_model_sums, recover_qdrant
from tasks.drill.health import service_target, wait_healthy
from tasks.drill.held_back import check_held_back_files, check_live_services
from tasks.drill.marker import forget_drill, record_drill
from tasks.drill.project import (
    ScratchProject,
    plan_scratch,
    prepare_project,
    scratch_config,
    start_project,
    tear_down,
)
from tasks.drill.report import DrillReport, drill_markdown, drill_summary, not_started
from tasks.health.checks import failing
from tasks.health.model import CheckResult, HealthContext
from tasks.reports import artifact_key, publish_markdown
from tasks.repository import open_repository
from tasks.restore.files import restore_files
from tasks.restore.versions import drill_version_checks
from tasks.status import StackStatus, read_stack_status


@flow(name="drill-restore", flow_run_name=lambda: run_name("drill"), log_prints=False)
def drill_restore(
    snapshot: str = "latest",
    from_offbox: bool = False,
    repo: str | None = None,
    stack: str | None = None,
    config_file: str | None = None,
) -> DrillReport:
    """Restore drill: restore a snapshot (default the newest) into a scratch directory, start it
    as its own compose project on free loopback ports, run the service health checks and the
    data checks (Qdrant point counts, webui.db integrity and row counts, model SHA256SUMS),
    measure the RTO, tear everything down, and mark the snapshot in the repository. GPU
    services are not started a second time (``[drill] start_gpu_services``): their files are
    checked by sha256 and the live ones answer read-only calls, also from the restored
    consumers through a read-only relay. The live stack is never touched. Fails naming the
    missing object, part or failing check.
    """
    log = get_run_logger()
    config = flow_config(stack, config_file)
    repository = open_repository(config, _location(config, repo, from_offbox))
    manifest = repository.load_snapshot(snapshot)
    started_at = datetime.now(UTC)
    drill_id = new_drill_id(started_at)
    scratch = plan_scratch(config, drill_id)
    run = _Progress(scratch)
    failure, rto = None, None
    log.info("drill %s of %s into %s", drill_id, manifest.id, scratch.root)
    # before anything exists: a killed drill's project is torn down by the next command
    record_drill(config.stack_dir, drill_id, scratch.project, scratch.root)
    try:
        rto = _exercise(repository, manifest, config, run)
    except SbxError as exc:
        failure = str(exc)
        log.error("drill stopped: %s", failure)
    finally:
        leftovers = tear_down(run.prepared or scratch)
        if not leftovers:
            forget_drill(config.stack_dir, drill_id)
    checks = run.checks
    report = DrillReport(
        drill_id=drill_id,
        snapshot_id=manifest.id,
        repository=repository.location,
        stack_dir=config.stack_dir,
        scratch_project=scratch.project,
        passed=failure is None and not leftovers and not any(c.failed for c in checks),
        started_at=started_at,
        rto_s=rto,
        phases=run.phases,
        checks=checks,
        failure=failure,
        leftovers=leftovers,
        not_started=not_started(run.prepared.held_back if run.prepared else [], checks),
    )
    report = _mark(repository, report)
    history = list_marks(repository.storage)
    publish_markdown(
        artifact_key("drill", config.stack_dir.name),
        drill_markdown(report, history),
        drill_summary(report),
    )
    if not report.passed:
        raise DrillFailed(report)
    phases = ", ".join(f"{name} {secs:.1f} s" for name, secs in report.phases.items())
    log.info("drill passed: RTO %.1f s (%s)", rto or 0.0, phases)
    return report


@dataclass
class _Progress:
    """What a drill has done so far; the clean-up in ``finally`` reads it."""

    scratch: ScratchProject
    prepared: ScratchProject | None = None  # with its compose files, once written
    phases: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)


def _exercise(
    repository: Repository, manifest: SnapshotManifest, config: SbxConfig, run: _Progress
) -> float | None:
    """Restore, check files, start, wait healthy, recover Qdrant: the RTO, or None if unhealthy."""
    scratch, phases, checks = run.scratch, run.phases, run.checks
    t0 = time.monotonic()
    scratch.root.mkdir(parents=True, exist_ok=True)
    try:
        restore_files(repository, manifest, scratch.stack_dir)
    except SbxError as exc:
        if not is_no_space(exc):
            raise
        raise NoSpace(scratch.root, "the live stack was not touched") from exc
    phases["restore"] = time.monotonic() - t0
    t = time.monotonic()
    prepared = run.prepared = prepare_project(config, scratch, manifest)  # GPU services planned
    phases["prepare"] = time.monotonic() - t
    t = time.monotonic()
    checks += _file_checks(manifest, config, prepared)
    # the restore rule: data never into an older image than wrote it (tasks/restore/versions.py)
    checks += drill_version_checks(manifest, config, _live_status(config))
    phases["file checks"] = time.monotonic() - t
    t = time.monotonic()
    start_project(prepared)
    phases["start"] = time.monotonic() - t
    t = time.monotonic()
    scratch_cfg = scratch_config(config, prepared)
    healthy, results, ctx = wait_healthy(scratch_cfg, config.drill.health_timeout_s)
    phases["until healthy"] = time.monotonic() - t
    rto = time.monotonic() - t0 if healthy else None
    checks += results
    if prepared.held_back:
        checks += check_live_services(config, prepared.held_back)  # the live ones, read-only
    t = time.monotonic()
    checks += _qdrant_counts(manifest, config, prepared, ctx, results)
    phases["qdrant recovery"] = time.monotonic() - t
    return rto


def _file_checks(
    manifest: SnapshotManifest, config: SbxConfig, scratch: ScratchProject
) -> list[CheckResult]:
    """The restored files, before anything starts: databases, models, GPU services' files."""
    checks = []
    held = scratch.held_back
    if held:
        checks += check_held_back_files(scratch.stack_dir, manifest, held)
    hashed = tuple(m.path for h in held for m in h.mounts if m.path)
    for part in manifest.parts:
        if part.status != "captured":
            continue
        method = config.parts[part.name].method if part.name in config.parts else None
        if part.detail.get("mode") == "sqlite-online-backup":
            checks += check_databases(scratch.stack_dir, part)
        if method is ConsistencyMethod.IMMUTABLE:
            checks += check_model_sums(scratch.stack_dir, part, hashed)
    return checks


def _qdrant_counts(
    manifest: SnapshotManifest,
    config: SbxConfig,
    scratch: ScratchProject,
    ctx: HealthContext,
    health: list[CheckResult],
) -> list[CheckResult]:
    """Each Qdrant part recovered and counted in the scratch Qdrant when that Qdrant's API
    answers, whatever another service (a worker not started, or unhealthy) does."""
    checks: list[CheckResult] = []
    for part in manifest.parts:
        settings = config.parts.get(part.name)
        if part.status != "captured" or settings is None:
            continue
        if settings.method is not ConsistencyMethod.QDRANT_SNAPSHOT:
            continue
        target = service_target(ctx, settings.service)
        # its API, not Docker's healthcheck (still "starting" a few seconds after it answers)
        sick = [r.id for r in health if target and r.id == f"service:{target.name}" and r.failed]
        if sick:
            why = f"not compared: the scratch {target.name if target else 'qdrant'} is not healthy"
            checks.append(_not_checked(part.name, f"{why} ({', '.join(sick)})"))
            continue
        try:
            checks += recover_qdrant(target, scratch.stack_dir, part)
        except SbxError as exc:
            checks.append(_not_checked(part.name, f"recovery failed: {exc}"))
    return checks


def _not_checked(part: str, observed: str) -> CheckResult:
    outcome = failing(observed, "Read the scratch Qdrant's log in the drill run.")
    return CheckResult(
        id=f"data:{part}:counts",
        family="data",
        target=f"{part}:counts",
        state=outcome.state,
        observed=outcome.observed,
        next_step=outcome.next_step,
    )


def _live_status(config: SbxConfig) -> StackStatus | None:
    try:
        return read_stack_status(config)
    except SbxError:  # no Docker, no compose file: the drill's other checks say so
        return None


def _location(config: SbxConfig, repo: str | None, from_offbox: bool) -> str | None:
    if not from_offbox:
        return repo
    if repo:
        raise ConfigError("Give either --repo or --from-offbox for a drill, not both.")
    if not config.offbox.url:
        raise ConfigError(
            "--from-offbox needs the off-box repository: set [offbox] url = "
            '"s3://bucket/prefix" in sbx.toml (or SBX_OFFBOX__URL).'
        )
    return config.offbox.url


def _mark(repository: Repository, report: DrillReport) -> DrillReport:
    mark = DrillMark(
        drill_id=report.drill_id,
        snapshot_id=report.snapshot_id,
        passed=report.passed,
        started_at=report.started_at,
        finished_at=datetime.now(UTC),
        rto_s=report.rto_s,
        phases=report.phases,
        checks=len(report.checks),
        failed=report.failed,
        host=socket.gethostname(),
        sbx_version=version("sbx"),
    )
    return report.model_copy(update={"mark_key": write_mark(repository.storage, mark)})
