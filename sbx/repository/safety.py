"""Is a manifest safe to restore? Checked for the whole manifest before a restore writes a byte,
and by verify with the very same function, so verify never passes what restore refuses.

A restore must never write outside its target. Refused, naming the entry: paths that are empty,
absolute, or have empty, ``.`` or ``..`` parts; duplicate paths; entries below a symlink or below
a non-directory of the snapshot; hard links to anything but an earlier file of the same part.
Entry types other than file, dir, symlink and hardlink (devices, fifos) are already refused when
the manifest is loaded. A symlink's *target* is data: it is restored verbatim, whatever it points
at (absolute, out of the tree, dangling). What keeps that safe is the writer, not this check:
every write goes through directory handles opened with ``O_NOFOLLOW`` (restore_fs.py), so no
link, restored or already there, can redirect a later write (docs/repository.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from sbx.errors import ManifestInvalid, RestoreRefused
from sbx.repository.format import OBJECT_ID_RE, Entry, PartRecord, SnapshotManifest


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name an entry (relative POSIX, no empty/./.. parts), or None."""
    if not path:
        return "its path is empty"
    if path.startswith("/"):
        return "its path is absolute"
    if "\0" in path:
        return "its path contains NUL"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"its path has an empty, '.' or '..' part ({part!r})"
    return None


def select_parts(manifest: SnapshotManifest, names: Iterable[str] | None) -> list[PartRecord]:
    """The parts to restore: those asked for (each must exist and be captured), else all
    captured ones."""
    captured = [part for part in manifest.parts if part.status == "captured"]
    if names is None:
        return captured
    wanted = list(dict.fromkeys(names))
    chosen = []
    for name in wanted:
        part = manifest.part(name)
        if part is None or part.status != "captured":
            have = ", ".join(p.name for p in captured) or "none"
            state = "is not in it" if part is None else f"was {part.status}"
            raise RestoreRefused(
                f"Part {name!r} of snapshot {manifest.id} {state}; captured parts: {have}. "
                "Pick parts from that list (--part), or another snapshot. Nothing was written."
            )
        chosen.append(part)
    return chosen


def check_restorable(manifest: SnapshotManifest, parts: list[PartRecord]) -> None:
    """Raise :class:`ManifestInvalid` naming the first entry of ``parts`` that is unsafe."""
    found = restore_problem(parts)
    if found is None:
        return
    part, path, problem = found
    raise ManifestInvalid(
        f"snapshot {manifest.id}",
        f"entry {path!r} of part {part!r}: {problem}",
        "Nothing was written. Restore another snapshot ('sbx snapshots'), and run "
        "'sbx verify --all': a manifest that breaks these rules was not made by sbx.",
    )


def restore_problem(parts: list[PartRecord]) -> tuple[str, str, str] | None:
    """(part name, entry path, why) of the first entry of ``parts`` a restore refuses, or None.

    The one check both restore and verify apply.
    """
    entries = [(part, entry) for part in parts for entry in part.entries]
    links = {entry.path for _, entry in entries if entry.type == "symlink"}
    types: dict[str, str] = {}
    for part, entry in entries:
        problem = path_problem(entry.path)
        if problem is None and entry.path in types:
            problem = "its path appears twice"
        if problem is not None:
            return part.name, entry.path, problem
        types[entry.path] = entry.type
    for part in parts:
        earlier_files: set[str] = set()
        for entry in part.entries:
            problem = _entry_problem(entry, types, links, earlier_files)
            if problem is not None:
                return part.name, entry.path, problem
            if entry.type == "file":
                earlier_files.add(entry.path)
    return None


def _entry_problem(
    entry: Entry, types: Mapping[str, str], links: Set[str], earlier_files: set[str]
) -> str | None:
    path = entry.path
    parts_of_path = path.split("/")
    for depth in range(1, len(parts_of_path)):
        parent = "/".join(parts_of_path[:depth])
        if parent in links:
            return f"its parent {parent!r} is a symlink"
        if types.get(parent, "dir") != "dir":
            return f"its parent {parent!r} is not a directory"
    if entry.type == "hardlink" and entry.hardlink_to not in earlier_files:
        return f"its hard link target {entry.hardlink_to!r} is not an earlier file of the part"
    for extent in entry.extents:
        if not OBJECT_ID_RE.match(extent.object):
            return f"object id {extent.object!r} is malformed"
    return None
