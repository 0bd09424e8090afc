"""Is a manifest safe to restore? Checked for the whole manifest before a restore writes a byte.

A restore must never write outside its target, and must not leave links that point out of it.
Refused, naming the entry: paths that are empty, absolute, or have empty, ``.`` or ``..`` parts;
duplicate paths; entries below a symlink or below a non-directory of the snapshot; hard links to
anything but an earlier file of the same part; symlinks whose target is absolute or, resolved
through the snapshot's own symlinks, leaves the restore root. Entry types other than file, dir,
symlink and hardlink (devices, fifos) are already refused when the manifest is loaded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from sbx.errors import ManifestInvalid, RestoreRefused
from sbx.repository.format import OBJECT_ID_RE, Entry, PartRecord, SnapshotManifest

# the kernel gives up after 40 symlink hops (ELOOP); a loop cannot lead anywhere, so stop there
_MAX_HOPS = 40


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


def symlink_escapes(path: str, target: str, links: Mapping[str, str]) -> bool:
    """True when the symlink at ``path`` resolves to somewhere outside the restore root.

    Resolution follows POSIX through the other symlinks in ``links`` (path -> target), so
    ``x -> .`` plus ``y -> x/..`` is caught although each looks harmless alone.
    """
    if target.startswith("/"):
        return True
    stack = path.split("/")[:-1]
    pending = deque(target.split("/"))
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return True
            stack.pop()
            continue
        stack.append(part)
        link = links.get("/".join(stack))
        if link is not None:
            hops += 1
            if hops > _MAX_HOPS:
                return False
            if link.startswith("/"):
                return True
            stack.pop()
            pending.extendleft(reversed(link.split("/")))
    return False


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
    where = f"snapshot {manifest.id}"
    entries = [(part, entry) for part in parts for entry in part.entries]
    links = {entry.path: entry.link_target or "" for _, entry in entries if entry.type == "symlink"}
    types: dict[str, str] = {}

    def refuse(part: PartRecord, path: str, problem: str) -> ManifestInvalid:
        return ManifestInvalid(
            where,
            f"entry {path!r} of part {part.name!r}: {problem}",
            "Nothing was written. Restore another snapshot ('sbx snapshots'), and run "
            "'sbx verify --all': a manifest that breaks these rules was not made by sbx.",
        )

    for part, entry in entries:
        problem = path_problem(entry.path)
        if problem is not None:
            raise refuse(part, entry.path, problem)
        if entry.path in types:
            raise refuse(part, entry.path, "its path appears twice")
        types[entry.path] = entry.type
    for part in parts:
        earlier_files: set[str] = set()
        for entry in part.entries:
            problem = _entry_problem(entry, types, links, earlier_files)
            if problem is not None:
                raise refuse(part, entry.path, problem)
            if entry.type == "file":
                earlier_files.add(entry.path)


def _entry_problem(
    entry: Entry, types: Mapping[str, str], links: Mapping[str, str], earlier_files: set[str]
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
    if entry.type == "symlink" and symlink_escapes(path, links[path], links):
        return f"its symlink target {entry.link_target!r} leaves the restore root"
    for extent in entry.extents:
        if not OBJECT_ID_RE.match(extent.object):
            return f"object id {extent.object!r} is malformed"
    return None
