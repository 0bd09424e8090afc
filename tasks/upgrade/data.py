"""The data half of an upgrade's rollback: which parts hold a service's data, whether that data
changed since the pre-upgrade snapshot, and putting the snapshot back before the old image starts.

Open WebUI migrates its database on start and cannot go back (its alembic downgrades are not run
by the app; its release notes say a downgrade after a migration is not supported), and a Qdrant
snapshot restores only into the same or the next minor version: returning the image alone would
leave the old image on data the new one rewrote. So an upgrade snapshots the data of the services
it changes first (the normal backup of their parts, tagged ``pre-upgrade``), fingerprints it, and
a rollback whose data no longer matches that fingerprint restores the snapshot in place (the
in-place restore's staging, verification, atomic swap journal and kept copy of the live data)
while the service is stopped, so that only the old image ever starts on it.

The fingerprint, one sha256 a part over its files: SQLite databases by the sha256 of an
online-backup copy (the same consistent read the backup makes; the ``-wal``/``-shm`` files are
inside it), every other file by size and mtime. Parts captured through Qdrant's snapshot API
are recovered through the API of the old image once it runs (the version that made the
snapshot), before the gate.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from blocks.config import ConsistencyMethod, SbxConfig
from sbx.repository import SnapshotManifest
from tasks.backup.sqlite_copy import SIDECAR_SUFFIXES, copy_database, is_sqlite_database
from tasks.clients.compose import ComposeCli, effective_files
from tasks.repository import open_repository
from tasks.restore.carry import carry_across, remove_carried
from tasks.restore.in_place import check_swappable, plan_swap, remove_staging, swap_in
from tasks.restore.kept import new_stamp, remove_if_empty
from tasks.status import read_stack_status
from tasks.upgrade.journal import JOURNAL_DIR, PINS, JournalEntry

log = logging.getLogger("sbx.upgrade")

TAG = "pre-upgrade"  # snapshot tag: trigger=pre-upgrade, pre-upgrade=<journal entry or swap>


def data_parts(config: SbxConfig, compose_services: list[str]) -> list[str]:
    """The enabled parts whose ``service`` is one of ``compose_services`` (by compose name).

    Immutable parts (models: mounted read-only, never rewritten by the service) are left out:
    no upgrade changes them, and hashing hundreds of GiB would hold up every upgrade."""
    wanted = set(compose_services)
    found = []
    for name, part in config.enabled_parts().items():
        if part.service is None or not part.paths or part.method is ConsistencyMethod.IMMUTABLE:
            continue
        svc = config.services.get(part.service)
        compose_name = svc.compose_service if svc else part.service
        if compose_name in wanted or part.service in wanted:
            found.append(name)
    return found


def part_services(config: SbxConfig, parts: list[str]) -> list[str]:
    """The compose services whose data ``parts`` hold."""
    services = set()
    for name in parts:
        part = config.parts.get(name)
        if part is None or part.service is None:
            continue
        svc = config.services.get(part.service)
        services.add(svc.compose_service if svc else part.service)
    return sorted(services)


def fingerprint_data(config: SbxConfig, parts: list[str]) -> dict[str, str]:
    """part -> one sha256 over its files' fingerprints (:func:`file_prints`): small enough for
    the journal entry whatever the number of uploads, and all a rollback needs to decide."""
    return {
        name: hashlib.sha256(
            "".join(f"{path}\t{value}\n" for path, value in sorted(prints.items())).encode()
        ).hexdigest()
        for name in parts
        for prints in [file_prints(config, name)]
    }


def file_prints(config: SbxConfig, part: str) -> dict[str, str]:
    """path -> fingerprint of every file of ``part`` as it is now (see the module docstring)."""
    stack = config.stack_dir
    prints: dict[str, str] = {}
    for rel in config.parts[part].paths:
        root = stack / rel
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        databases = {f for f in files if is_sqlite_database(f)}
        sidecars = {Path(f"{db}{suffix}") for db in databases for suffix in SIDECAR_SUFFIXES}
        for path in files:
            if path in sidecars or path.is_symlink() or not path.is_file():
                continue
            key = path.relative_to(stack).as_posix()
            prints[key] = _database_print(path) if path in databases else _stat_print(path)
    return prints


def _stat_print(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _database_print(path: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="sbx-upgrade-") as tmp:
        copy = copy_database(path, Path(tmp) / "copy.db")
        return "sqlite:" + hashlib.sha256(copy.copy_path.read_bytes()).hexdigest()


def data_changed(config: SbxConfig, entry: JournalEntry) -> list[str]:
    """The entry's data parts whose fingerprint differs from the one taken before the switch."""
    now = fingerprint_data(config, entry.data_parts)
    return [part for part in entry.data_parts if now[part] != entry.data_fingerprint.get(part)]


def _api_parts(manifest: SnapshotManifest, parts: list[str]) -> list[str]:
    """Parts recovered through a service's API (Qdrant's snapshot API), not swapped as files."""
    return [
        p.name for p in manifest.parts if p.name in parts and p.detail.get("mode") == "snapshot-api"
    ]


def restore_data(
    config: SbxConfig, project: str, entry: JournalEntry, changed: list[str], *, api: bool
) -> str:
    """Put the pre-upgrade snapshot of ``entry`` back when its data ``changed``; what was done.

    ``api=False`` (before the old image starts): the services are stopped (and left stopped:
    the switch starts the old image) and the file parts swapped in. ``api=True`` (after it
    started): parts captured through Qdrant's snapshot API are recovered through its API."""
    if not entry.data_snapshot:
        return "no pre-upgrade snapshot (no data part for these services)"
    if not changed:
        return f"data unchanged since pre-upgrade snapshot {entry.data_snapshot}"
    repository = open_repository(config, None)
    manifest = repository.load_snapshot(entry.data_snapshot)
    via_api = _api_parts(manifest, entry.data_parts)
    parts = [p for p in changed if (p in via_api) == api]
    shown = ", ".join(changed)
    what = f"restored data ({', '.join(entry.data_parts)}) from pre-upgrade snapshot "
    what += f"{manifest.id}: {shown} changed since"
    if not parts:
        return what
    log.warning("data changed since snapshot %s (%s): restoring %s", manifest.id, shown, parts)
    if not api:
        check_swappable(manifest, parts, config)  # before anything stops
        _stop(config, project, part_services(config, parts))
    stack = config.stack_dir
    staging = stack / ".sbx" / f"restore-{manifest.id}"
    remove_staging(staging)  # a killed earlier attempt may have left one
    stamp = new_stamp(stack)
    swapped = plan = None
    try:
        repository.restore(manifest, staging, parts)  # every byte verified before the swap
        # a source on another file system is carried beside itself first (carry.py)
        plan = carry_across(plan_swap(manifest, parts, config, staging), staging)
        swapped = swap_in(plan, config, read_stack_status(config), staging, stamp)
    finally:
        remove_staging(staging)
        if plan is not None:
            remove_carried(plan)
        if swapped is None:
            remove_if_empty(stack, stamp)
    kept = ", ".join(swapped.kept_paths(stack)) or "nothing"
    return f"{what}; the changed data is kept in {kept}"


def _stop(config: SbxConfig, project: str, services: list[str]) -> None:
    """Stop (not remove) the services running the new image: the swap finds them stopped and
    leaves them so, and the switch to the old image recreates them."""
    if services:
        log.info("stopping %s before its data is restored", ", ".join(services))
        _compose(config, project).run("stop", "-t", "10", *services)


def start_again(config: SbxConfig, project: str, parts: list[str]) -> None:
    """Start the services of ``parts`` again after a data restore that failed before the swap
    (they run the image they ran; nothing was switched)."""
    services = part_services(config, parts)
    if services:
        _compose(config, project).run("start", *services)


def _compose(config: SbxConfig, project: str) -> ComposeCli:
    files = effective_files(config.stack_dir, config.compose.files)
    if (config.stack_dir / JOURNAL_DIR / PINS).is_file():
        files.append(str(JOURNAL_DIR / PINS))
    return ComposeCli(config.stack_dir, project=project, files=files)
