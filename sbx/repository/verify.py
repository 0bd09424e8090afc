"""Verifying snapshots: re-read and re-hash what they reference (design invariant 4).

Every object is loaded once (its plaintext re-hashed against its id), and every file's content
hash is recomputed, even when many files or snapshots share the object: from its bytes for a
small file, from its extents (whose objects are each checked) for a chunked one. Files with the
same hash and extents are checked once, ordered by where their bytes live, through a
:class:`PlaintextCache` that reads ahead on worker threads. A missing object, a damaged one,
or a file whose extents do not give its hash is damage, reported once per (snapshot, part,
path) that uses it.

With ``sample`` (0 < fraction <= 1), a random share of the objects is read, and the files made
only of sampled objects are hash-checked: a cheap nightly spot check between full verifies.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter, defaultdict

from blake3 import blake3
from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository.format import (
    Extent,
    SnapshotManifest,
    extents_hash,
    hashed_by_extents,
)
from sbx.repository.objects import ObjectStore, PlaintextCache

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
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.damaged


def verify_snapshots(
    objects: ObjectStore,
    manifests: list[SnapshotManifest],
    broken: list[Damage] | None = None,
    *,
    sample: float | None = None,
    rng: random.Random | None = None,
    small_file_limit: int,
) -> VerifyReport:
    """Check ``manifests`` (``broken``: manifests that did not even load, already damage);
    ``small_file_limit`` is the repository's: it says which files' hashes cover their extents."""
    started = time.monotonic()
    users: dict[_FileKey, list[tuple[str, str, str]]] = defaultdict(list)
    for manifest in manifests:
        for part in manifest.parts:
            for entry in part.entries:
                if entry.type == "file" and entry.hash is not None:
                    key = (entry.hash, tuple(entry.extents))
                    users[key].append((manifest.id, part.name, entry.path))
    referenced = {extent.object for key in users for extent in key[1]}
    chosen = referenced
    if sample is not None and sample < 1:
        count = min(len(referenced), max(1, math.ceil(sample * len(referenced))))
        picker = rng or random.Random()  # noqa: S311 (a spot check, not cryptography)
        chosen = set(picker.sample(sorted(referenced), count))
    files = sorted(
        (key for key in users if all(extent.object in chosen for extent in key[1])),
        key=lambda key: (key[1][0].object, key[1][0].offset) if key[1] else ("", 0),
    )
    order = [extent.object for key in files for extent in key[1]]
    workers = max(1, min(4, os.cpu_count() or 1))
    damaged = list(broken or [])
    with PlaintextCache(objects, dict(Counter(order)), order=order, workers=workers) as cache:
        for key in files:
            problem = _check_file(cache, key, small_file_limit)
            if problem is not None:
                object_id, reason = problem
                damaged += [Damage(snapshot_id=s, part=p, path=f, object=object_id, reason=reason)
                            for s, p, f in users[key]]  # fmt: skip
        # objects no checked file got to (a file stops at its first damaged object; a sampled
        # object may belong only to files with unsampled objects) are still read once
        for object_id in sorted(chosen - cache.seen):
            try:
                cache.check(object_id)
            except (CorruptObject, ObjectMissing) as exc:
                for key, places in users.items():
                    if any(extent.object == object_id for extent in key[1]):
                        damaged += [Damage(snapshot_id=s, part=p, path=f, object=object_id,
                                           reason=_reason(exc)) for s, p, f in places]  # fmt: skip
    damaged.sort(key=lambda d: (d.snapshot_id, d.part or "", d.path or ""))
    return VerifyReport(
        snapshots=sorted({m.id for m in manifests} | {d.snapshot_id for d in broken or []}),
        sample=sample,
        objects_referenced=len(referenced),
        objects_checked=cache.loaded + len(cache.failed),
        bytes_checked=cache.loaded_bytes,
        files_checked=len(files),
        damaged=damaged,
        duration_s=time.monotonic() - started,
    )


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
