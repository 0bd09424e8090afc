"""The snapshot list of a repository: which manifests exist, and loading them.

A snapshot exists exactly when ``snapshots/<id>.json`` does; anything else under ``snapshots/``
(a backend's leftovers, names that are not snapshot ids) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import BinaryIO, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import (
    ManifestInvalid,
    ObjectMissing,
    SnapshotAmbiguous,
    SnapshotNotFound,
    UnsupportedFormat,
)
from sbx.repository.format import (
    SNAPSHOT_ID_RE,
    SNAPSHOTS_PREFIX,
    PartStatus,
    SnapshotManifest,
    Stats,
    snapshot_key,
)
from sbx.repository.manifest_json import parse_manifest, scan_manifest, validate_manifest
from sbx.repository.storage import Storage

_Loaded = TypeVar("_Loaded", SnapshotManifest, "SnapshotSummary")


class PartSummary(BaseModel):
    """A part as a listing shows it (what else the manifest says is ignored)."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: PartStatus = "captured"
    stats: Stats = Field(default_factory=Stats)
    incomplete: list[str] | None = None  # paths that vanished while captured


class SnapshotSummary(BaseModel):
    """A snapshot as a listing shows it: its manifest without the file entries. Not for
    restoring or verifying: those load the whole manifest (:func:`load_manifest`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    host: str
    stack_dir: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    parts: list[PartSummary] = Field(default_factory=list)
    stats: Stats = Field(default_factory=Stats)


class UnreadableSnapshot(BaseModel):
    """A snapshot whose manifest exists but cannot be read (truncated, not JSON, invalid, or
    written by a newer sbx): listed as damaged, kept by prune, skipped as a backup's base."""

    model_config = ConfigDict(frozen=True)

    id: str
    reason: str


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


def match_id(storage: Storage, text: str) -> str:
    """The snapshot ``text`` names: ``latest``, a whole id, or the start of exactly one id
    (as restic takes a short id); :class:`SnapshotNotFound`, :class:`SnapshotAmbiguous`."""
    if text == "latest" or SNAPSHOT_ID_RE.match(text):
        return resolve_id(storage, text)
    matches = [i for i in snapshot_ids(storage) if text and i.startswith(text)]
    if not matches:
        raise SnapshotNotFound(text, storage.location)
    if len(matches) > 1:
        raise SnapshotAmbiguous(text, storage.location, matches)
    return matches[0]


def load_manifest(storage: Storage, snapshot_id: str) -> SnapshotManifest:
    """The validated manifest of ``snapshot_id`` (or ``latest``)."""
    return _load(storage, snapshot_id, parse_manifest)


def load_summary(storage: Storage, snapshot_id: str) -> SnapshotSummary:
    """What a listing shows of ``snapshot_id`` (or ``latest``). The entries are read past, not
    validated: at 100,000 files that is most of a manifest's load time."""

    def summary(stream: BinaryIO, where: str) -> SnapshotSummary:
        data = scan_manifest(stream, where, entries=False)
        return validate_manifest(SnapshotSummary, data, where)

    return _load(storage, snapshot_id, summary)


def load_summaries(storage: Storage) -> list[SnapshotSummary | UnreadableSnapshot]:
    """Every snapshot as a listing shows it, oldest first; one whose manifest does not load is
    an :class:`UnreadableSnapshot` rather than an error, so one damaged manifest does not hide
    the others (nor block the commands that list them)."""
    listed: list[SnapshotSummary | UnreadableSnapshot] = []
    for snapshot_id in snapshot_ids(storage):
        try:
            listed.append(load_summary(storage, snapshot_id))
        except (ManifestInvalid, UnsupportedFormat) as exc:
            listed.append(UnreadableSnapshot(id=snapshot_id, reason=exc.message))
        except SnapshotNotFound:
            continue  # pruned between the listing and the read
    return listed


def _load(storage: Storage, snapshot_id: str, parse: Callable[[BinaryIO, str], _Loaded]) -> _Loaded:
    snapshot_id = resolve_id(storage, snapshot_id)
    try:
        stream = storage.open(snapshot_key(snapshot_id))
    except ObjectMissing:
        raise SnapshotNotFound(snapshot_id, storage.location) from None
    with stream:  # read a block at a time: a large manifest is not held as text as well
        loaded = parse(stream, f"snapshot {snapshot_id} in {storage.location}")
    if loaded.id != snapshot_id:
        raise ManifestInvalid(
            f"snapshot {snapshot_id} in {storage.location}", f"it carries the id {loaded.id}"
        )
    return loaded
