"""Backup runbook: one consistent snapshot of every part of the stack, stored on the box."""

from __future__ import annotations

import time
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from blocks.config import ConsistencyMethod, PartConfig, SbxConfig
from flows.runbook import flow_config, run_name
from sbx.errors import BackupIncomplete, ConfigError
from tasks.backup.box_state import read_box_state
from tasks.backup.capture import CaptureContext, capture_part
from tasks.backup.drift import drift_base, record_drift
from tasks.backup.sources import FILLED_PARTS, Source, read_sources, sources_by_part
from tasks.leftovers.finish import observe_stack
from tasks.reports import BackupReport, artifact_key, backup_markdown, publish_markdown
from tasks.repository import open_repository

PROGRESS_EVERY_S = 1.0  # the run page's progress bar moves at most this often


@flow(name="backup-stack", flow_run_name=lambda: run_name("backup"), log_prints=False)
def backup_stack(
    stack: str | None = None,
    repo: str | None = None,
    parts: list[str] | None = None,
    config_file: str | None = None,
    trigger: str = "manual",
    offbox: bool = False,
    tags: dict[str, str] | None = None,
    only_sources: list[str] | None = None,
    methods: dict[str, str] | None = None,
) -> BackupReport:
    """Back up the sealed box: every part captured consistently into one snapshot.

    Qdrant through its snapshot API (no downtime), Open WebUI's databases through SQLite's online
    backup, models hashed once and checked against SHA256SUMS, everything else copied. The
    snapshot becomes visible only when its manifest is written, last. A service sbx stops for a
    cold copy is always started again. With ``offbox`` (the nightly run), the repository is then
    copied off the box when ``offbox.url`` is configured; a failed copy fails this run. ``tags``
    are added to the snapshot's (an upgrade's ``pre-upgrade`` snapshot names its journal entry).
    ``only_sources`` (volume names, host paths) narrows the parts the compose model fills
    (volumes, outside, mounts) to those: an upgrade's snapshot of one service's volumes.
    ``methods`` (part -> consistency method) overrides the configured ones for this run: an
    upgrade's physical copy of Qdrant's storage.
    """
    log = get_run_logger()
    config = flow_config(stack, config_file)
    selected = {
        name: part.model_copy(update={"method": ConsistencyMethod(methods[name])})
        if methods and name in methods
        else part
        for name, part in select_parts(config, parts).items()
    }
    status, restarted = observe_stack(config)
    if status is None:
        log.warning("Docker is not reachable: copying files as they are, no service quiesced")
    box = read_box_state(config, status).model_dump(mode="json") if status else {}
    repository = open_repository(config, repo, create=True)
    found, compose_problem = read_sources(config)
    if compose_problem:
        log.warning("the compose model could not be read: %s", compose_problem)
    sources = sources_by_part([s for s in found if s.part in selected and _wanted(s, only_sources)])
    # mounts, outside and volumes have no paths of their own: there only when the compose
    # model names something for them
    selected = {n: p for n, p in selected.items() if p.paths or n in sources}
    ctx = CaptureContext(
        config=config, status=status, sources=sources, compose_problem=compose_problem
    )
    with repository.writer(command=f"sbx backup of {config.stack_dir}") as writer:
        previous = repository.latest_snapshot()
        writer.begin_snapshot(
            previous=previous,
            tags={**(tags or {}), "trigger": trigger},
            stack_dir=config.stack_dir,
        )
        # a progress bar on the run's page while the parts are captured (models take long)
        progress = create_progress_artifact(
            0.0, description=f"Backup of {config.stack_dir}: {len(selected)} parts"
        )
        assert isinstance(progress, UUID)  # sync flow: the call has run, not a coroutine
        shown = time.monotonic()
        for done, (name, part) in enumerate(selected.items(), start=1):
            # no per-part tag: a tagged task run asks the API for tag concurrency slots first,
            # one more write that SQLite answers with 503 under load (a 2-3 s retry each); the
            # run is named capture-<part>, which the UI filters on just as well
            record = capture_part(writer, name, part, ctx, of=len(selected))
            # each update is an API write (~50 ms): after a slow part and at the end, not after
            # every quick one, which nobody could watch go by anyway
            if done == len(selected) or time.monotonic() - shown >= PROGRESS_EVERY_S:
                update_progress_artifact(
                    progress,
                    100.0 * done / len(selected),
                    description=f"Backup of {config.stack_dir}: {done}/{len(selected)} parts "
                    f"({name}: {record.status})",
                )
                shown = time.monotonic()
            log.info(
                "part %s: %s, %d files, %d bytes (%d new)",
                name,
                record.status,
                record.stats.files,
                record.stats.bytes,
                record.stats.new_bytes,
            )
        manifest = writer.commit(box=box)
    # hand edits → change log, compared with the last snapshot that held the config parts
    drift = record_drift(config, repository, drift_base(repository, previous, manifest), manifest)
    report = BackupReport.from_manifest(
        manifest,
        repository.location,
        status.project if status else None,
        restarted,
        docker=status is not None,
    ).model_copy(update={"drift": drift})
    publish_markdown(
        artifact_key("backup", config.stack_dir.name),
        backup_markdown(report),
        f"Backup of {config.stack_dir}",
    )
    if offbox and config.offbox.url:
        from prefect import tags as run_tags

        from flows.offbox import copy_offbox
        from tasks.fleet import box_tags
        from tasks.run_alerts import alert_run_failed

        try:
            # on a fleet's box the copy's run carries the box's tag, as this run does through
            # its deployment: the fleet view finds it (tasks/fleet.py)
            with run_tags(*box_tags(config)):
                copy_offbox(repo=repo, stack=stack, config_file=config_file)
        except Exception as exc:
            alert_run_failed(
                config,
                "off-box copy",
                f"snapshot {report.snapshot_id} is stored on the box, but the copy to "
                f"{config.offbox.url} failed: {exc}",
                "fix the cause and run 'sbx copy': it sends only what the copy lacks.",
            )
            raise
    elif offbox:
        log.info("offbox.url is not set in sbx.toml: no off-box copy")
    if report.problems:
        raise BackupIncomplete(report)
    return report


def _wanted(source: Source, only: list[str] | None) -> bool:
    return only is None or source.part not in FILLED_PARTS or source.location in only


def select_parts(config: SbxConfig, names: list[str] | None) -> dict[str, PartConfig]:
    enabled = config.enabled_parts()
    if not names:
        return enabled
    unknown = [n for n in names if n not in config.parts]
    if unknown:
        raise ConfigError(
            f"Unknown part {', '.join(unknown)}; the parts are {', '.join(config.parts)}. "
            "Check --part."
        )
    return {name: config.parts[name] for name in names}
