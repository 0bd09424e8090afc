"""Upgrade and rollback runbooks: journaled, pinned by digest, health-gated, undone on failure."""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from flows.runbook import flow_config, run_name, stack_label
from sbx.errors import SbxError, UpgradeRefused
from tasks.backup.sources import read_sources
from tasks.reports import artifact_key, publish_markdown
from tasks.upgrade.data import TAG, restore_data, start_again
from tasks.upgrade.data_units import (
    data_changed,
    data_units,
    entry_units,
    fingerprint_units,
    physical_copies,
    unit_parts,
)
from tasks.upgrade.gate import gate_names
from tasks.upgrade.journal import (
    JournalEntry,
    Release,
    close_entry,
    history,
    journal_dir,
    read_open,
    release_space,
    reserve_space,
    save_open,
)
from tasks.upgrade.maintenance import maintenance_window
from tasks.upgrade.prepare import (
    check_compose_unchanged,
    check_images_present,
    find_newer_images,
    pull_images,
    reconcile_upgrade,
    record_current_release,
)
from tasks.upgrade.report import upgrade_markdown
from tasks.upgrade.steps import alert, apply_target


class UpgradeReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    entry: str | None
    state: str  # committed | up-to-date
    changed: dict[str, str]  # service -> digest now running
    data: str | None = None  # the pre-upgrade snapshot taken, or what a rollback did with data


class UpgradeCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    newer: dict[str, tuple[str, str]]  # service -> (running digest, registry digest)
    current: list[str]


def _open_entry(config: SbxConfig, entry: JournalEntry) -> JournalEntry:
    running = read_open(config.stack_dir)
    if running is not None:
        raise UpgradeRefused(
            f"Journal entry {running.id} ({running.action} of {', '.join(running.services)}, "
            f"pid {running.pid}) is still open; wait for it to finish ('sbx status')."
        )
    try:  # the rollback's room, held before anything changes (journal.reserve_space)
        reserve_space(config.stack_dir)
    except OSError as exc:
        raise UpgradeRefused(
            f"Cannot reserve room for the {entry.action} journal in "
            f"{journal_dir(config.stack_dir)} ({exc}): a rollback there could not be recorded. "
            "Free disk space there and retry. Nothing was changed."
        ) from exc
    run_id = flow_run.id
    return save_open(config.stack_dir, entry.model_copy(update={"flow_run_id": run_id}))


def _snapshot_data(
    config: SbxConfig, stack: str | None, config_file: str | None, entry: JournalEntry
) -> JournalEntry:
    """The pre-upgrade snapshot of the changed services' data (the normal backup of their
    parts, and of their volumes and mounts only: data_units.py), tagged ``pre-upgrade`` with the
    entry's id, and the fingerprint a rollback compares with."""
    if not config.upgrade.snapshot_data:
        return entry
    units = data_units(config, sorted(entry.target), read_sources(config)[0])
    parts = unit_parts(units)
    if not parts:
        return entry
    from flows.backup import backup_stack  # a flow of its own in the run history

    try:
        report = backup_stack(
            stack=stack,
            parts=parts,
            config_file=config_file,
            trigger=TAG,
            tags={TAG: entry.id},
            only_sources=[u.location for u in units.values() if u.location],
            methods=physical_copies(config, parts),
        )
    except SbxError as exc:
        close_entry(
            config.stack_dir, entry, "aborted", gate="pre-upgrade snapshot", detail=str(exc)
        )
        raise UpgradeRefused(
            f"The pre-upgrade snapshot of {', '.join(parts)} failed ({exc}), so a rollback could "
            "not return the data: nothing was switched. Fix the backup ('sbx backup --part "
            f"{parts[0]}'), or set [upgrade] snapshot_data = false to upgrade without it."
        ) from exc
    # what the snapshot holds is what a rollback can put back: a part with nothing to capture
    # (the example's data/open-webui on a box that keeps it in a volume) was skipped
    captured = {p.name for p in report.parts if p.status == "captured"}
    units = {key: unit for key, unit in units.items() if unit.part in captured}
    parts = unit_parts(units)
    update = {
        "data_snapshot": report.snapshot_id,
        "data_parts": parts,
        "data_units": units,
        "data_fingerprint": fingerprint_units(config, units),
    }
    get_run_logger().info("pre-upgrade snapshot %s of %s", report.snapshot_id, ", ".join(parts))
    return save_open(config.stack_dir, entry.model_copy(update=update))


def _apply_in_window(
    config: SbxConfig,
    project: str,
    entry: JournalEntry,
    prepare: Callable[[JournalEntry], JournalEntry] | None = None,
    after_switch: Callable[[JournalEntry], JournalEntry] | None = None,
) -> JournalEntry:
    """apply_target with the changed services' alerts muted (a notice at start and end);
    ``prepare`` runs first inside the window (a rollback's data restore), ``after_switch``
    between the switch and the gate (its recovery through Qdrant's API)."""
    with maintenance_window(
        config.stack_dir,
        sorted(gate_names(config, sorted(entry.target))),
        f"sbx {entry.action} {entry.id} of {', '.join(sorted(entry.target))}",
        lambda subject, body: alert(config, subject, body),
    ):
        try:
            if prepare is not None:
                entry = prepare(entry)
            return apply_target(config, project, entry, after_switch)
        finally:  # rolled back or failed too: the UI shows how the entry ended
            _publish_entry(config, entry.id)


def _publish_entry(config: SbxConfig, entry_id: str) -> None:
    closed = next((e for e in reversed(history(config.stack_dir)) if e.id == entry_id), None)
    if closed is not None:
        publish_markdown(
            artifact_key(closed.action, stack_label(str(config.stack_dir))),
            upgrade_markdown(closed),
            f"sbx {closed.action} {closed.id}: {closed.state}",
        )


@flow(name="upgrade-stack", flow_run_name=lambda: run_name("upgrade"))
def upgrade_stack(
    services: list[str] | None = None, stack: str | None = None, config_file: str | None = None
) -> UpgradeReport:
    """Upgrade services to the image their tag names in the registry now, gated on health.

    Records the running release in the journal first (digests, compose and env hashes, models),
    refuses to start unless every image to return to is present, pulls, pins the new digests in
    a compose override, recreates the services and requires N consecutive passing health rounds
    (with a real completion) within the soak window. On failure it returns to the recorded
    digests, gates them again, and fails the run with "rolled back: <gate>".
    """
    log = get_run_logger()
    config = flow_config(stack, config_file)
    reconcile_upgrade(config)
    project, release = record_current_release(config, services)
    if not release.images:
        return UpgradeReport(entry=None, state="up-to-date", changed={})
    entry = _open_entry(
        config, JournalEntry(action="upgrade", services=sorted(release.images), before=release)
    )
    try:
        try:
            targets = pull_images(release)
        except SbxError as exc:  # nothing was switched: the entry ends here
            close_entry(config.stack_dir, entry, "aborted", gate="pull", detail=str(exc))
            raise
        entry = save_open(config.stack_dir, entry.model_copy(update={"target": targets}))
        if not targets:
            close_entry(config.stack_dir, entry, "committed", detail="every image was current")
            log.info("every service runs the image its tag names: nothing to do")
            return UpgradeReport(entry=entry.id, state="up-to-date", changed={})
        entry = _snapshot_data(config, stack, config_file, entry)
        closed = _apply_in_window(config, project, entry)
        return UpgradeReport(
            entry=closed.id,
            state="committed",
            changed={s: i.digest for s, i in targets.items()},
            data=f"pre-upgrade snapshot {closed.data_snapshot}" if closed.data_snapshot else None,
        )
    finally:  # every way out frees the rollback's reserved room
        release_space(config.stack_dir)


@flow(name="rollback-stack", flow_run_name=lambda: run_name("rollback"))
def rollback_stack(
    services: list[str] | None = None,
    stack: str | None = None,
    config_file: str | None = None,
    force: bool = False,
) -> UpgradeReport:
    """Return services to the release recorded before the last committed upgrade, gated.

    Refused (nothing changed) when a compose file changed since that upgrade, unless ``force``."""
    config = flow_config(stack, config_file)
    reconcile_upgrade(config)
    project, now = record_current_release(config, services)
    last = next(
        (e for e in reversed(history(config.stack_dir)) if e.action == "upgrade" and e.target
         and e.state == "committed"),
        None,
    )  # fmt: skip
    if last is None:
        raise UpgradeRefused(
            f"The journal of {config.stack_dir} has no committed upgrade to return from. "
            "Nothing was changed."
        )
    check_compose_unchanged(last, now, force=force)
    wanted = [s for s in (services or sorted(last.target)) if s in last.before.images]
    targets = {s: last.before.images[s] for s in wanted if s in now.images}
    check_images_present(Release(**{**now.model_dump(), "images": targets}))
    # snapshot_data = false: the image only (e.g. when the pre-upgrade snapshot was pruned)
    units = {
        key: unit
        for key, unit in entry_units(config, last).items()
        if set(unit.services) & set(targets) and config.upgrade.snapshot_data
    }
    parts = unit_parts(units)
    entry = _open_entry(
        config,
        JournalEntry(
            action="rollback",
            services=sorted(targets),
            before=now,
            target=targets,
            data_snapshot=last.data_snapshot if parts else None,
            data_parts=parts,
            data_units=units,
            data_fingerprint={k: v for k, v in last.data_fingerprint.items() if k in units},
        ),
    )
    changed: list[str] = []

    def put_data_back(entry: JournalEntry) -> JournalEntry:
        """The upgrade's pre-upgrade snapshot, in place, before the old images start."""
        nonlocal changed
        changed = data_changed(config, entry) if entry.data_snapshot else []
        try:
            data = restore_data(config, project, entry, changed, api=False)
        except SbxError as exc:
            if changed:
                start_again(config, project, entry)
            close_entry(config.stack_dir, entry, "aborted", gate="data restore", detail=str(exc))
            raise
        return save_open(config.stack_dir, entry.model_copy(update={"data": data}))

    def recover_via_api(entry: JournalEntry) -> JournalEntry:
        """Qdrant's collections, through the old image's API once it runs (before the gate)."""
        note = restore_data(config, project, entry, changed, api=True) if changed else ""
        if not note:
            return entry
        return entry.model_copy(update={"data": f"{entry.data}; {note}"})

    try:
        closed = _apply_in_window(config, project, entry, put_data_back, recover_via_api)
    finally:
        release_space(config.stack_dir)
    return UpgradeReport(
        entry=closed.id,
        state="committed",
        changed={s: i.digest for s, i in targets.items()},
        data=closed.data,
    )


@flow(name="check-upgrades", flow_run_name=lambda: run_name("upgrade-check"))
def check_upgrades(
    services: list[str] | None = None, stack: str | None = None, config_file: str | None = None
) -> UpgradeCheck:
    """List the services whose tag names a newer image in its registry; changes nothing."""
    config = flow_config(stack, config_file)
    release, newer = find_newer_images(config, services)
    return UpgradeCheck(newer=newer, current=sorted(set(release.images) - set(newer)))
