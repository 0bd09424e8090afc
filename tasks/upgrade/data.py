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

What counts as a service's data (configured parts, and the volumes and bind mounts it writes)
and its fingerprint: tasks/upgrade/data_units.py. Qdrant's storage is copied as files with
Qdrant stopped (data_units.physical_copies): the old image refuses storage a newer one opened.
Parts captured through Qdrant's snapshot API (journal entries of an sbx before that) are
recovered through the API of the old image once it runs, before the gate.
"""

from __future__ import annotations

import logging

from blocks.config import SbxConfig
from sbx.repository import SnapshotManifest
from sbx.repository.format import PartRecord
from tasks.backup.sources import FILLED_PARTS
from tasks.clients.compose import ComposeCli, effective_files
from tasks.repository import open_repository
from tasks.restore.carry import carry_across, remove_carried
from tasks.restore.in_place import check_swappable, plan_swap, remove_staging, swap_in
from tasks.restore.kept import new_stamp, remove_if_empty
from tasks.status import read_stack_status
from tasks.upgrade.data_units import entry_units, unit_parts
from tasks.upgrade.journal import JOURNAL_DIR, PINS, DataUnit, JournalEntry

log = logging.getLogger("sbx.upgrade")

TAG = "pre-upgrade"  # snapshot tag: trigger=pre-upgrade, pre-upgrade=<journal entry or swap>


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
    started, before the gate): parts captured through Qdrant's snapshot API are recovered
    through its API, and what is returned is only what that phase adds ("" when nothing)."""
    if not entry.data_snapshot:
        return "no pre-upgrade snapshot (no data part for these services)"
    if not changed:
        return f"data unchanged since pre-upgrade snapshot {entry.data_snapshot}"
    units = entry_units(config, entry)
    changed_units = {key: units[key] for key in changed if key in units}
    repository = open_repository(config, None)
    # only what changed, and of the parts the compose model fills only the changed volumes and
    # mounts: another service's volume in the same part is never touched
    manifest = narrow_manifest(repository.load_snapshot(entry.data_snapshot), changed_units)
    via_api = _api_parts(manifest, entry.data_parts)
    parts = [p for p in unit_parts(changed_units) if (p in via_api) == api]
    shown = ", ".join(changed)
    what = f"restored data ({', '.join(entry.data_parts)}) from pre-upgrade snapshot "
    what += f"{manifest.id}: {shown} changed since"
    if not parts:
        return "" if api else what
    log.warning("data changed since snapshot %s (%s): restoring %s", manifest.id, shown, parts)
    if not api:
        check_swappable(manifest, parts, config)  # before anything stops
        _stop(config, project, unit_services(changed_units, parts))
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
    if api:
        return f"{', '.join(parts)} recovered through its API, what it held kept in {kept}"
    return f"{what}; the changed data is kept in {kept}"


def unit_services(units: dict[str, DataUnit], parts: list[str]) -> list[str]:
    """The compose services that mount the ``units`` held in ``parts``."""
    return sorted({svc for unit in units.values() if unit.part in parts for svc in unit.services})


def narrow_manifest(manifest: SnapshotManifest, units: dict[str, DataUnit]) -> SnapshotManifest:
    """``manifest`` with only the parts of ``units``, and in the parts the compose model fills
    only the units' sources (their entries, and the directories above them)."""
    kept: list[PartRecord] = []
    for part in manifest.parts:
        mine = [u for u in units.values() if u.part == part.name]
        if not mine:
            continue
        if part.name not in FILLED_PARTS:
            kept.append(part)
            continue
        wanted = {u.location for u in mine}
        sources = [s for s in part.detail.get("sources", []) if s.get("from") in wanted]
        tops = [str(s["stored_as"]) for s in sources if s.get("stored_as")]
        entries = [e for e in part.entries if any(_related(e.path, top) for top in tops)]
        detail = {**part.detail, "sources": sources}
        kept.append(part.model_copy(update={"detail": detail, "entries": entries}))
    return manifest.model_copy(update={"parts": kept})


def _related(path: str, top: str) -> bool:
    """``path`` is ``top``, below it, or a directory above it."""
    return path == top or path.startswith(f"{top}/") or top.startswith(f"{path}/")


def _stop(config: SbxConfig, project: str, services: list[str]) -> None:
    """Stop (not remove) the services running the new image: the swap finds them stopped and
    leaves them so, and the switch to the old image recreates them."""
    if services:
        log.info("stopping %s before its data is restored", ", ".join(services))
        _compose(config, project).run("stop", "-t", "10", *services)


def start_again(config: SbxConfig, project: str, entry: JournalEntry) -> None:
    """Start the services of the entry's data again after a data restore that failed before
    the swap (they run the image they ran; nothing was switched)."""
    units = entry_units(config, entry)
    services = unit_services(units, unit_parts(units))
    if services:
        _compose(config, project).run("start", *services)


def _compose(config: SbxConfig, project: str) -> ComposeCli:
    files = effective_files(config.stack_dir, config.compose.files)
    if (config.stack_dir / JOURNAL_DIR / PINS).is_file():
        files.append(str(JOURNAL_DIR / PINS))
    return ComposeCli(config.stack_dir, project=project, files=files)
