"""What changed between two snapshots, from their manifests alone (no object is read).

A pure function of two entry lists: each path is compared by what a manifest records of it
(type, size, mode, owner, link target, content hash, extended attributes). The mtime is left
out, as ``restic diff`` leaves it out by default: a file touched but not changed is no change.
The codes are restic's: ``+`` added, ``-`` removed, ``T`` type changed, ``M`` content changed
(content, size or link target), ``U`` only metadata changed (mode, owner, xattrs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sbx.repository.format import Entry, SnapshotManifest

DiffCode = Literal["+", "-", "T", "M", "U"]

#: what a changed entry's ``what`` may name, in the order a line shows them
CONTENT_FIELDS = ("content", "size", "link")
METADATA_FIELDS = ("mode", "owner", "xattrs")


class EntryState(BaseModel):
    """What the diff compares of one path (the restore-only details, extents and mtime, left
    out)."""

    model_config = ConfigDict(frozen=True)

    type: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    hash: str | None = None
    link: str | None = Field(default=None, description="Symlink target or hard link's path.")
    xattrs: tuple[str, ...] = Field(default=(), description="Names and a digest of each value.")

    @classmethod
    def of(cls, entry: Entry) -> EntryState:
        return cls(
            type=entry.type,
            size=entry.size,
            mode=entry.mode,
            uid=entry.uid,
            gid=entry.gid,
            hash=entry.hash,
            link=entry.link_target if entry.type == "symlink" else entry.hardlink_to,
            xattrs=tuple(f"{k}={v}" for k, v in sorted((entry.xattrs or {}).items())),
        )


class Change(BaseModel):
    """One path that differs: its code, the part it is in (B's, else A's), what changed."""

    model_config = ConfigDict(frozen=True)

    code: DiffCode
    path: str
    part: str
    what: tuple[str, ...] = ()
    before: EntryState | None = None
    after: EntryState | None = None


class Counts(BaseModel):
    """restic's summary: files, directories and others (links) new, removed, changed."""

    files_new: int = 0
    files_removed: int = 0
    files_changed: int = 0
    dirs_new: int = 0
    dirs_removed: int = 0
    others_new: int = 0
    others_removed: int = 0
    bytes_added: int = Field(default=0, description="Size of the files added or grown into.")
    bytes_removed: int = Field(default=0, description="Size of the files removed or replaced.")


class SnapshotDiff(BaseModel):
    """The whole diff of snapshot ``a`` to snapshot ``b``, paths in order."""

    model_config = ConfigDict(frozen=True)

    a: str
    b: str
    parts: list[str] | None = Field(default=None, description="Only these parts (--part).")
    changes: list[Change] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)


def diff_snapshots(
    a: SnapshotManifest, b: SnapshotManifest, parts: Sequence[str] | None = None
) -> SnapshotDiff:
    """``a`` → ``b``, limited to ``parts`` when given (a path counts in the part it is in)."""
    wanted = set(parts) if parts else None

    def entries(manifest: SnapshotManifest) -> Iterable[tuple[str, Entry]]:
        for part in manifest.parts:
            if wanted is None or part.name in wanted:
                yield from ((part.name, entry) for entry in part.entries)

    changes = diff_entries(entries(a), entries(b))
    return SnapshotDiff(
        a=a.id,
        b=b.id,
        parts=sorted(wanted) if wanted else None,
        changes=changes,
        counts=count_changes(changes),
    )


def diff_entries(a: Iterable[tuple[str, Entry]], b: Iterable[tuple[str, Entry]]) -> list[Change]:
    """The changes that turn ``a``'s (part, entry) pairs into ``b``'s, sorted by path."""
    # plain tuples while comparing (a model per entry cost 15 s at 100,000 files); models only
    # for the paths that changed
    old = {entry.path: (part, _key(entry), entry) for part, entry in a}
    new = {entry.path: (part, _key(entry), entry) for part, entry in b}
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is not None and after is not None and before[1] == after[1]:
            continue
        change = compare(
            path,
            None if before is None else (before[0], EntryState.of(before[2])),
            None if after is None else (after[0], EntryState.of(after[2])),
        )
        if change is not None:
            changes.append(change)
    return changes


def _key(entry: Entry) -> tuple[object, ...]:
    """What :class:`EntryState` holds, as a tuple: equal exactly when the states are."""
    return (entry.type, entry.size, entry.mode, entry.uid, entry.gid, entry.hash,
            entry.link_target if entry.type == "symlink" else entry.hardlink_to,
            tuple(sorted((entry.xattrs or {}).items())))  # fmt: skip


def compare(
    path: str, old: tuple[str, EntryState] | None, new: tuple[str, EntryState] | None
) -> Change | None:
    """The change of one path, None when it is the same in both."""
    if old is None and new is None:
        return None
    if old is None:
        assert new is not None
        return Change(code="+", path=path, part=new[0], after=new[1])
    if new is None:
        return Change(code="-", path=path, part=old[0], before=old[1])
    before, after = old[1], new[1]
    if before == after:
        return None
    if before.type != after.type:
        return Change(code="T", path=path, part=new[0], what=("type",), before=before, after=after)
    what = changed_fields(before, after)
    code: DiffCode = "M" if set(what) & set(CONTENT_FIELDS) else "U"
    return Change(code=code, path=path, part=new[0], what=what, before=before, after=after)


def changed_fields(before: EntryState, after: EntryState) -> tuple[str, ...]:
    """Which of content, size, link, mode, owner, xattrs differ (same type)."""
    differs = {
        "content": before.hash != after.hash,
        "size": before.size != after.size,
        "link": before.link != after.link,
        "mode": before.mode != after.mode,
        "owner": (before.uid, before.gid) != (after.uid, after.gid),
        "xattrs": before.xattrs != after.xattrs,
    }
    return tuple(name for name in (*CONTENT_FIELDS, *METADATA_FIELDS) if differs[name])


def count_changes(changes: Iterable[Change]) -> Counts:
    """restic's summary counts of ``changes``: a type change counts as one removed and one new."""
    counts = Counts()
    for change in changes:
        if change.code in "MU":
            if change.after is not None and change.after.type == "file":
                counts.files_changed += 1
        else:
            if change.before is not None:
                _bump(counts, f"{_kind(change.before)}_removed")
            if change.after is not None:
                _bump(counts, f"{_kind(change.after)}_new")
        if change.code != "U":  # bytes of content that went or came
            if change.before is not None and change.before.type == "file":
                counts.bytes_removed += change.before.size
            if change.after is not None and change.after.type == "file":
                counts.bytes_added += change.after.size
    return counts


def _kind(state: EntryState) -> str:
    return {"file": "files", "dir": "dirs"}.get(state.type, "others")


def _bump(counts: Counts, name: str) -> None:
    setattr(counts, name, getattr(counts, name) + 1)
