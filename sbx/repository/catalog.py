"""The snapshot list of a repository: which manifests exist, and loading them.

A snapshot exists exactly when ``snapshots/<id>.json`` does; anything else under ``snapshots/``
(a backend's leftovers, names that are not snapshot ids) is ignored.
"""

from __future__ import annotations

from sbx.errors import ManifestInvalid, ObjectMissing, SnapshotNotFound
from sbx.repository.format import (
    SNAPSHOT_ID_RE,
    SNAPSHOTS_PREFIX,
    SnapshotManifest,
    snapshot_key,
)
from sbx.repository.manifest_json import parse_manifest
from tasks.clients.storage import Storage


def snapshot_ids(storage: Storage) -> list[str]:
    """Ids of the complete snapshots, oldest first (ids sort by creation time)."""
    found = []
    for key in storage.list(SNAPSHOTS_PREFIX):
        name = key.removeprefix(SNAPSHOTS_PREFIX)
        if name.endswith(".json") and SNAPSHOT_ID_RE.match(name.removesuffix(".json")):
            found.append(name.removesuffix(".json"))
    return sorted(found)


def resolve_id(storage: Storage, snapshot_id: str) -> str:
    """``snapshot_id`` itself, or the newest id for ``latest``; :class:`SnapshotNotFound`."""
    if snapshot_id == "latest":
        ids = snapshot_ids(storage)
        if not ids:
            raise SnapshotNotFound("latest", f"{storage.location} (it has no snapshots yet)")
        return ids[-1]
    if not SNAPSHOT_ID_RE.match(snapshot_id):
        raise SnapshotNotFound(snapshot_id, storage.location)
    return snapshot_id


def load_manifest(storage: Storage, snapshot_id: str) -> SnapshotManifest:
    """The validated manifest of ``snapshot_id`` (or ``latest``)."""
    snapshot_id = resolve_id(storage, snapshot_id)
    try:
        stream = storage.open(snapshot_key(snapshot_id))
    except ObjectMissing:
        raise SnapshotNotFound(snapshot_id, storage.location) from None
    with stream:  # read a block at a time: a large manifest is not held as text as well
        manifest = parse_manifest(stream, f"snapshot {snapshot_id} in {storage.location}")
    if manifest.id != snapshot_id:
        raise ManifestInvalid(
            f"snapshot {snapshot_id} in {storage.location}", f"it carries the id {manifest.id}"
        )
    return manifest
