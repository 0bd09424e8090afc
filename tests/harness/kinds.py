"""Which dimensions the harness draws: one switch each, in this one place (issue #18).

Every dimension is on. To see which ones a build gets right, turn some off here or, without
editing, name them in ``SBX_HARNESS_OFF`` (comma-separated, e.g. ``xattrs,acls``); the run
prints what was off, so a green run with dimensions off is never mistaken for a full one.
"""

from __future__ import annotations

import os

KINDS: dict[str, bool] = {
    # names: newline, backslash, glob characters, spaces, multi-byte UTF-8
    "names_odd": True,
    # names that are not UTF-8 (bytes paths; sbx sees them as surrogate escapes)
    "names_non_utf8": True,
    # names of 200 to 255 bytes (the Linux limit for one name)
    "names_255": True,
    "link_relative": True,  # to a file inside the tree
    "link_to_dir": True,  # to a directory inside the tree
    "link_absolute": True,  # to /nonexistent/... and to an absolute path into the tree
    "link_outside": True,  # relative, climbing out of the tree (../../x)
    "link_dangling": True,  # relative, to nothing (the target is any drawn name)
    "modes": True,  # setuid, setgid, sticky, 000, read-only: files and directories
    "owners": True,  # uid/gid of files, directories and links (as root)
    "mtimes": True,  # before 1970, nanoseconds, far future
    "empty_dirs": True,
    "hardlinks": True,  # within a directory and across directories
    "specials": True,  # a fifo and a character device: backup skips them with a warning
    "sparse": True,  # holes inside and at the end of a file (st_blocks compared)
    "xattrs": True,  # user.* on files and dirs, trusted.* also on links
    "acls": True,  # POSIX access ACLs on files, default ACLs on directories
    "root_link": True,  # the part's root path is itself a symlink to the tree
    "force_beside": True,  # restore --force into a target holding other parts' files
    # test_mutation.py: what changes while the walk reads the tree
    "mutate_files": True,  # files grown, truncated, replaced, removed, added
    "mutate_dirs": True,  # directories renamed or removed
}

_OFF = {name.strip() for name in os.environ.get("SBX_HARNESS_OFF", "").split(",") if name.strip()}
_UNKNOWN = _OFF - KINDS.keys()
if _UNKNOWN:
    raise KeyError(f"SBX_HARNESS_OFF names {sorted(_UNKNOWN)}; the dimensions are {sorted(KINDS)}")
for _name in _OFF:
    KINDS[_name] = False


def on(name: str) -> bool:
    """Whether dimension ``name`` is drawn (a typo is an error, not a dimension left off)."""
    return KINDS[name]


def off() -> list[str]:
    return sorted(name for name, enabled in KINDS.items() if not enabled)
