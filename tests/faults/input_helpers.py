"""Shared by the bad-input tests (issue #9, item 3): a small repository with one good snapshot to
craft hostile ones around, a sentinel tree around the restore target, and the CLI in process.

The sentinel: the target is ``<place>/target`` and ``<place>/sentinel`` holds a few files. Every
hostile path a case uses points *into the sentinel* (``../sentinel/pwned``, an absolute path
below it, a link to it), so a restore that wrote outside its target shows up as a changed
sentinel tree, not as a file somewhere on the machine nobody looks at.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import typer.main
import typer.testing
from pydantic import TypeAdapter
from repository.helpers import CHUNK, PACK, SMALL
from typer.testing import CliRunner

from sbx.errors import SbxError
from sbx.repository import Repository
from sbx.repository.format import Entry, snapshot_key
from sbx.repository.storage.local import LocalStorage

ENTRY_JSON = TypeAdapter(Entry)  # an entry as its manifest stores it

BIG = 3 * CHUNK + 17  # chunked: its hash covers its extents
_IDS = itertools.count(1)


def new_snapshot_id() -> str:
    """A fresh, valid snapshot id (manifests are write-once: every crafted one gets its own)."""
    return f"20260102T030405Z-{next(_IDS):08x}"


@dataclass
class Bed:
    """A repository with one good snapshot, and the place its restores go."""

    repo: Repository
    repo_dir: Path
    place: Path
    small: dict[str, Any]  # a good small file entry (its object exists)
    big: dict[str, Any]  # a good chunked file entry

    @property
    def target(self) -> Path:
        return self.place / "target"

    @property
    def sentinel(self) -> Path:
        return self.place / "sentinel"

    def put(self, entries: list[dict[str, Any]], **extra: Any) -> str:
        """Store a hand-made manifest as is (no writer check); returns its id."""
        sid = str(extra.pop("id", None) or new_snapshot_id())
        self.put_raw(sid, json.dumps(manifest(sid, entries, **extra)).encode())
        return sid

    def put_raw(self, sid: str, raw: bytes) -> None:
        self.repo.storage.put(snapshot_key(sid), raw)


def make_bed(root: Path) -> Bed:
    repo_dir = root / "repo"
    repo = Repository.open_or_init(
        LocalStorage(repo_dir), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )
    with repo.writer(command="faults test") as writer:
        writer.begin_snapshot()
        with writer.part("configs", "copy") as part:
            part.add_bytes("ok.txt", b"hello", mode=0o644, mtime_ns=1)
            part.add_bytes("big.bin", os.urandom(BIG), mode=0o644, mtime_ns=1)
        made = writer.commit()
    small, big = (
        ENTRY_JSON.dump_python(e, mode="json", exclude_none=True) for e in made.parts[0].entries
    )
    place = root / "place"
    (place / "sentinel" / "inner").mkdir(parents=True)
    (place / "sentinel" / "keep").write_text("untouched\n")
    (place / "sentinel" / "inner" / "deep").write_text("untouched too\n")
    return Bed(repo, repo_dir, place, small, big)


def manifest(sid: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "id": sid,
        "created_at": "2026-01-02T03:04:05Z",
        "finished_at": "2026-01-02T03:04:06Z",
        "host": "box",
        "sbx_version": "0.1.0",
        "parts": [{"name": "configs", "method": "copy", "entries": entries}],
    }
    base.update(extra)
    return base


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every node below ``root`` (not following links): type, mode, content or link target."""
    state: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                state[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_nlink, path.read_bytes())
            else:
                state[rel] = ("other", st.st_mode)
    return state


def escapes(root: Path) -> list[str]:
    """Nodes below ``root`` that lead out of it: files with hard links the tree itself does not
    hold (a link to a file elsewhere). Symlinks pointing out are not: a link's target is data,
    restored verbatim; that nothing was written through one is checked by comparing the tree
    around the target before and after."""
    found = []
    files: dict[int, list[tuple[Path, int]]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                files.setdefault(st.st_ino, []).append((path, st.st_nlink))
    for names in files.values():
        path, nlink = names[0]
        if nlink != len(names):
            found.append(f"{path} has {nlink} hard links, {len(names)} inside the target")
    return found


NEXT_STEPS = (
    "sbx verify",
    "sbx snapshots",
    "upgrade sbx",
    "--repo",
    "Restore into",
    "Choose another",
    "Pick parts",
    "off-box copy",
)


def clear_message(exc: BaseException, names: Sequence[str]) -> str | None:
    """Why ``exc`` is not a clear refusal (an SbxError naming ``names`` and a next step)."""
    if not isinstance(exc, SbxError):
        return f"{type(exc).__name__} is no SbxError: {exc}"
    text = str(exc)
    missing = [name for name in names if name not in text]
    if missing:
        return f"the message does not name {missing}: {text}"
    if not any(step in text for step in NEXT_STEPS):
        return f"the message gives no next step: {text}"
    return None


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def invoke(args: list[str], env: dict[str, str] | None = None) -> CliResult:
    """The CLI in this process, as ``sbx.cli.main`` would end: an SbxError becomes its message
    on stderr and its exit status; anything else that escapes is a crash (kept in exception)."""
    from sbx.cli import app

    # a case that got past its input check must not start (or reach) a Prefect server:
    # ensure_api() then takes this dead address; CliRunner restores both variables afterwards
    isolated = {
        "COLUMNS": "200",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "sbx",
        **(env or {}),
    }
    # typer rebuilds the click command on every invoke (0.15 s here); build it once
    with mock.patch.object(typer.testing, "_get_command", _command):
        result = CliRunner().invoke(app, args, env=isolated)
    exc = result.exception
    if isinstance(exc, SbxError):
        return CliResult(exc.exit_code, result.stdout, result.stderr + f"error: {exc}\n", None)
    if isinstance(exc, SystemExit):
        exc = None
    return CliResult(result.exit_code, result.stdout, result.stderr, exc)


@functools.cache
def _command(app: typer.Typer) -> Any:
    return typer.main.get_command(app)
