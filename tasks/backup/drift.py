"""Config drift: after each snapshot is written, the configuration files that changed since the
previous snapshot of the stack and that no sbx change explains go into the change log, one entry
each (action ``drift``), and a change to an agent allowlist, the proxy's keys or TLS files is
told to the alert targets. The rules are in tasks/backup/drift_rules.py; docs/changelog.md says
what an operator sees.

Read from the two manifests (sbx/repository/diff.py); a changed text file's two versions are read
from the repository only to name the keys that changed. No value is ever logged or recorded."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import SbxError
from sbx.repository import Repository, SnapshotManifest, SnapshotSummary
from sbx.repository.diff import Change, diff_snapshots
from sbx.repository.format import Entry
from tasks.backup.drift_rules import (
    CONFIG_PARTS,
    CONTENT_LIMIT,
    DriftChange,
    explained_by,
    is_config,
    is_sensitive,
    key_changes,
)
from tasks.changelog import append_change, read_changes
from tasks.clients.notify import Notifier
from tasks.run_alerts import deliver

log = logging.getLogger(__name__)
NEXT_STEP = (
    "If nobody on this box made this change, treat it as an incident ('sbx incident freeze'); "
    "if someone did, nothing to do: the change log records it."
)


@task(name="record-drift", cache_policy=NO_CACHE)
def record_drift(
    config: SbxConfig,
    repository: Repository,
    previous: SnapshotManifest | None,
    manifest: SnapshotManifest,
) -> list[DriftChange]:
    """Record (and for sensitive files, alert on) the configuration files changed by hand since
    ``previous``; an unchanged night records nothing."""
    parts = _compared_parts(previous, manifest)
    if previous is None or not parts:
        return []
    old = {e.path: e for p in parts if (r := previous.part(p)) for e in r.entries}
    new = {e.path: e for p in parts if (r := manifest.part(p)) for e in r.entries}
    run_log = get_run_logger()  # in the run's log on the server, beside the other parts'
    sbx_changes = read_changes(config.stack_dir)
    since = previous.created_at.replace(microsecond=0)  # the change log keeps whole seconds
    found = []
    for change in diff_snapshots(previous, manifest, parts).changes:
        if not is_config(change.part, change.path) or _only_dirs(change):
            continue
        if (cause := explained_by(change.path, sbx_changes, since)) is not None:
            run_log.info("%s changed by sbx (%s #%d)", change.path, cause.action, cause.seq)
            continue
        drift = _describe(repository, change, old.get(change.path), new.get(change.path))
        append_change(
            config.stack_dir,
            action="drift",
            target=drift.path,
            before={"hash": drift.old_hash, "snapshot": previous.id},
            after={**drift.model_dump(mode="json", exclude={"path", "old_hash"}),
                   "snapshot": manifest.id},
        )  # fmt: skip
        run_log.warning("config drift: %s", drift.describe())
        found.append(drift)
    for drift in found:
        if drift.sensitive:
            _alert(config, drift, manifest.id)
    return found


LOOK_BACK = 30  # snapshots searched for the base of the comparison (their summaries only)


def drift_base(
    repository: Repository, latest: SnapshotManifest | None, manifest: SnapshotManifest
) -> SnapshotManifest | None:
    """The snapshot to compare ``manifest``'s configuration with: the newest earlier one of the
    same stack that holds every config part ``manifest`` holds. Usually ``latest`` (the base
    of the backup); after a partial one (a pre-upgrade snapshot, ``sbx backup --part``), the
    full one before it: comparing with the partial would skip the night, and an edit made
    before it would never be recorded."""
    wanted = _held(manifest)
    if not wanted or latest is None:
        return latest
    if _held(latest) >= wanted and latest.stack_dir == manifest.stack_dir:
        return latest
    earlier = [i for i in repository.list_snapshots() if i < manifest.id and i != latest.id]
    for snapshot_id in reversed(earlier[-LOOK_BACK:]):
        try:
            summary = repository.snapshot_summary(snapshot_id)
            if summary.stack_dir == manifest.stack_dir and _held(summary) >= wanted:
                return repository.load_snapshot(snapshot_id)
        except SbxError as exc:  # a damaged manifest is passed over, as a backup's base is
            log.warning("snapshot %s passed over as the drift base: %s", snapshot_id, exc)
    return latest


def _held(snapshot: SnapshotManifest | SnapshotSummary) -> set[str]:
    """The config parts ``snapshot`` (a manifest, or its summary) holds captured."""
    return {p.name for p in snapshot.parts if p.name in CONFIG_PARTS and p.status == "captured"}


def _compared_parts(previous: SnapshotManifest | None, manifest: SnapshotManifest) -> list[str]:
    """The config parts both snapshots hold whole, when both are of the same stack."""
    if previous is None or previous.stack_dir != manifest.stack_dir:
        return []
    return [
        name
        for name in CONFIG_PARTS
        if (a := previous.part(name)) is not None
        and (b := manifest.part(name)) is not None
        and a.status == b.status == "captured"
    ]


def _only_dirs(change: Change) -> bool:
    # a new folder shows through the files in it; its own mode and owner are not configuration
    return all(s is None or s.type == "dir" for s in (change.before, change.after))


def _describe(
    repository: Repository, change: Change, old: Entry | None, new: Entry | None
) -> DriftChange:
    keys = None
    if change.code == "M" and old is not None and new is not None:
        keys = key_changes(_content(repository, old), _content(repository, new))
    return DriftChange(
        path=change.path,
        part=change.part,
        code=change.code,
        what=list(change.what),
        old_hash=change.before.hash if change.before else None,
        new_hash=change.after.hash if change.after else None,
        keys_changed=keys,
        sensitive=is_sensitive(change.path),
    )


def _content(repository: Repository, entry: Entry) -> bytes | None:
    """The file's stored bytes (a config file: a few objects at most); None when it is not a
    regular file, too large, or cannot be read (the entry is recorded without its keys)."""
    if entry.type != "file" or entry.content_size > CONTENT_LIMIT:
        return None
    try:
        return b"".join(
            repository.objects.get(x.object)[x.offset : x.offset + x.length] for x in entry.extents
        )
    except SbxError as exc:
        log.warning("could not read %s from the repository to compare keys: %s", entry.path, exc)
        return None


def _alert(config: SbxConfig, drift: DriftChange, snapshot_id: str) -> None:
    subject = f"[sbx] CONFIG CHANGED {drift.path} on {config.stack_dir.name}"
    body = (
        f"{drift.describe()}: changed outside sbx before snapshot {snapshot_id} of "
        f"{config.stack_dir} (old hash {drift.old_hash}, new hash {drift.new_hash}).\n"
        f"Next step: {NEXT_STEP}"
    )
    notifier = Notifier()
    for name, target in config.alerts.items():
        if "failing" in target.on:
            deliver(notifier, name, target.block, "config drift", "failing", subject, body)
