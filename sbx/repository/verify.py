"""Verifying snapshots: re-read and re-hash what they reference (design invariant 4).

Every object is loaded once (its plaintext re-hashed against its id), and every file's content
hash is recomputed, even when many files or snapshots share the object: from its bytes for a
small file, from its extents (whose objects are each checked) for a chunked one. Files with the
same hash and extents are checked once, ordered by where their bytes live, through a
:class:`PlaintextCache` that reads ahead on worker threads. A missing object, a damaged one,
or a file whose extents do not give its hash is damage, reported once per (snapshot, part,
path) that uses it; so is the first entry of a snapshot that restore's safety check refuses
(the very function restore calls).

With ``sample`` (0 < fraction <= 1), a random share of the objects is read, and the files made
only of sampled objects are hash-checked: a cheap nightly spot check between full verifies.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator

from blake3 import blake3
from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository.format import (
    OBJECT_ID_RE,
    Entry,
    Extent,
    SnapshotManifest,
    extents_hash,
    hashed_by_extents,
)
from sbx.repository.objects import ObjectStore, PlaintextCache
from sbx.repository.safety import restore_problem

_FileKey = tuple[str, tuple[Extent, ...]]


class Damage(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    part: str | None = None
    path: str | None = None
    object: str | None = None
    reason: str

    def describe(self) -> str:
        where = f"snapshot {self.snapshot_id}"
        if self.part is not None:
            where += f", part {self.part}"
        if self.path is not None:
            where += f", {self.path}"
        return f"{where}: {self.reason}"


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    snapshots: list[str]
    sample: float | None = None
    objects_referenced: int = 0
    objects_checked: int = 0
    bytes_checked: int = Field(default=0, description="Plaintext bytes re-hashed.")
    files_checked: int = 0
    damaged: list[Damage] = Field(default_factory=list)
    replaced_by_next_backup: list[str] = Field(
        default_factory=list,
        description="Damaged objects the next backup stores again (missing, or their size or "
        "header is wrong), as long as a file with their content is still in the stack.",
    )
    duration_s: float = 0.0
    warnings: list[str] = Field(
        default_factory=list,
        description="What is wrong without being damage (an off-box copy older than the RPO).",
    )

    @property
    def ok(self) -> bool:
        return not self.damaged


Snapshots = Callable[[], Iterator[SnapshotManifest | Damage]]


def verify_snapshots(
    objects: ObjectStore,
    snapshots: Snapshots,
    *,
    sample: float | None = None,
    rng: random.Random | None = None,
    small_file_limit: int,
) -> VerifyReport:
    """Check the snapshots that ``snapshots()`` loads one at a time (a :class:`Damage` for one
    that does not load); ``small_file_limit`` is the repository's: it says which files' hashes
    cover their extents.

    Only the distinct files (hash and extents) are kept, not the manifests, so checking many
    large snapshots needs the memory of one. Who uses a damaged file or object is found by
    loading the snapshots a second time, which happens only when something is damaged.
    """
    started = time.monotonic()
    files: dict[_FileKey, None] = {}  # insertion-ordered set
    ids: list[str] = []
    damaged: list[Damage] = []
    for item in snapshots():
        if isinstance(item, Damage):  # a manifest that did not load
            ids.append(item.snapshot_id)
            damaged.append(item)
            continue
        ids.append(item.id)
        # the check restore applies, so verify never passes a snapshot restore refuses
        refused = restore_problem([part for part in item.parts if part.status == "captured"])
        if refused is not None:
            part, path, why = refused
            damaged.append(Damage(snapshot_id=item.id, part=part, path=path,
                                  reason=f"restore refuses it: {why}"))  # fmt: skip
        for key, _, _ in _file_entries(item):
            files.setdefault(key)
        del item  # or it would live on while the next manifest loads: two at the peak
    referenced = {extent.object for key in files for extent in key[1]}
    chosen = referenced
    if sample is not None and sample < 1:
        count = min(len(referenced), max(1, math.ceil(sample * len(referenced))))
        picker = rng or random.Random()  # noqa: S311 (a spot check, not cryptography)
        chosen = set(picker.sample(sorted(referenced), count))
    checked = sorted(
        (key for key in files if all(extent.object in chosen for extent in key[1])),
        key=lambda key: (key[1][0].object, key[1][0].offset) if key[1] else ("", 0),
    )
    del files
    order = [extent.object for key in checked for extent in key[1]]
    workers = max(1, min(4, os.cpu_count() or 1))
    bad_files: dict[_FileKey, tuple[str | None, str]] = {}
    bad_objects: dict[str, str] = {}
    with PlaintextCache(objects, dict(Counter(order)), order=order, workers=workers) as cache:
        for key in checked:
            problem = _check_file(cache, key, small_file_limit)
            if problem is not None:
                bad_files[key] = problem
        # objects no checked file got to (a file stops at its first damaged object; a sampled
        # object may belong only to files with unsampled objects) are still read once
        for object_id in sorted(chosen - cache.seen):
            try:
                cache.check(object_id)
            except (CorruptObject, ObjectMissing) as exc:
                bad_objects[object_id] = _reason(exc)
    if bad_files or bad_objects:
        damaged += _users_of(snapshots, bad_files, bad_objects)
    damaged.sort(key=lambda d: (d.snapshot_id, d.part or "", d.path or ""))
    return VerifyReport(
        replaced_by_next_backup=_replaced(objects, damaged, bad_files, small_file_limit),
        snapshots=sorted(set(ids)),
        sample=sample,
        objects_referenced=len(referenced),
        objects_checked=cache.loaded + len(cache.failed),
        bytes_checked=cache.loaded_bytes,
        files_checked=len(checked),
        damaged=damaged,
        duration_s=time.monotonic() - started,
    )


def _replaced(
    objects: ObjectStore,
    damaged: list[Damage],
    bad_files: dict[_FileKey, tuple[str | None, str]],
    small_file_limit: int,
) -> list[str]:
    """The damaged objects a backup will not reuse: the test it applies (``ObjectStore.usable``)
    with what the damaged files need from each, exact for a chunk; an object no checked file
    reached is judged by its size and header alone."""
    need: dict[str, tuple[int, bool] | None] = {d.object: None for d in damaged if d.object}
    for _, extents in bad_files:
        chunked = hashed_by_extents(sum(e.length for e in extents), small_file_limit)
        for extent in extents:
            if extent.object in need:
                known = need[extent.object]
                end = max(extent.offset + extent.length, known[0] if known else 0)
                need[extent.object] = (end, chunked)
    replaced = []
    for object_id, wanted in need.items():
        if wanted is None:
            sound = objects.has(object_id) and objects.reuse.looks_sound(object_id)
        else:
            sound = objects.usable(object_id, wanted[0], exact=wanted[1])
        if not sound:
            replaced.append(object_id)
    return sorted(replaced)


def _file_entries(manifest: SnapshotManifest) -> Iterator[tuple[_FileKey, str, str]]:
    """(file key, part, path) of each regular file with content in ``manifest``."""
    for part in manifest.parts:
        for entry in part.entries:
            # a malformed object id names no object: reported as what restore refuses
            if entry.type == "file" and entry.hash is not None and _well_formed(entry):
                yield (entry.hash, tuple(entry.extents)), part.name, entry.path


def _well_formed(entry: Entry) -> bool:
    return all(OBJECT_ID_RE.match(extent.object) for extent in entry.extents)


def _users_of(
    snapshots: Snapshots,
    bad_files: dict[_FileKey, tuple[str | None, str]],
    bad_objects: dict[str, str],
) -> Iterator[Damage]:
    """One damage per (snapshot, part, path) that uses a damaged file or object."""
    for item in snapshots():
        if isinstance(item, Damage):
            continue  # reported by the first pass
        for key, part, path in _file_entries(item):
            if key in bad_files:
                object_id, reason = bad_files[key]
                yield Damage(snapshot_id=item.id, part=part, path=path, object=object_id,
                             reason=reason)  # fmt: skip
            for object_id in sorted({e.object for e in key[1] if e.object in bad_objects}):
                yield Damage(snapshot_id=item.id, part=part, path=path, object=object_id,
                             reason=bad_objects[object_id])  # fmt: skip
        del item


def _check_file(
    cache: PlaintextCache, key: _FileKey, small_file_limit: int
) -> tuple[str | None, str] | None:
    expected, extents = key
    size = sum(extent.length for extent in extents)
    hasher = None if hashed_by_extents(size, small_file_limit) else blake3()
    for extent in extents:
        try:
            plaintext = cache.get(extent.object)
        except (CorruptObject, ObjectMissing) as exc:
            return extent.object, _reason(exc)
        end = extent.offset + extent.length
        if end > len(plaintext):
            return extent.object, f"object has {len(plaintext)} bytes, the file reads to {end}"
        if hasher is not None:
            hasher.update(memoryview(plaintext)[extent.offset : end])
    seen = extents_hash(extents) if hasher is None else hasher.hexdigest()
    if seen != expected:
        return None, f"content hashes to {seen}, expected {expected}"
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ObjectMissing):
        return "object missing"
    if isinstance(exc, CorruptObject):
        return f"object damaged: {exc.problem}"
    return str(exc)
