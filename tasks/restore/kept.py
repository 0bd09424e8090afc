"""Where an in-place restore keeps the stack's previous data, and how that data goes again.

Each in-place restore gets one directory, ``<stack>/.sbx/restores/<UTC time>/`` (e.g.
``20261207T051500Z``; ``-2``, ``-3``… when two start in the same second), holding:

- ``<part path>``: the live data the restore replaced (``notes``, ``data/qdrant``, ``env``…),
  moved there by rename (same file system, so atomic and journaled: swap_journal.py);
- ``<part path>.restored``: a growing log's copy from the snapshot (``logs.restored``), which
  never goes over the live logs;
- ``qdrant-collections/``: Qdrant's collections as they were, snapshotted through its API;
- ``<part path>.failed-restore``: the restored data, when an unhealthy result was swapped back.

A part on another file system than ``<stack>/.sbx`` (its parent directory is a mount) cannot be
renamed into it, and is never copied (double the disk, no atomicity): its previous data goes to
``<part's parent>/.sbx-restores/<UTC time>/<name>`` beside it, on its own file system (those
beside sources outside the stack are listed in ``.sbx/restores-elsewhere.json`` for cleanup).

Nothing else removes these: ``sbx restore cleanup [--older-than SPAN]`` does, and every in-place
restore removes those older than ``[restore] keep_days`` (14) at its end, never its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from sbx.durable import write_state
from sbx.errors import ConfigError, RestoreRefused

RESTORES = Path(".sbx") / "restores"
OTHER_FS = ".sbx-restores"
SWAP_JOURNAL = Path(".sbx") / "swap.json"
# the .sbx-restores directories beside sources outside the stack, for cleanup to find
ELSEWHERE = Path(".sbx") / "restores-elsewhere.json"
STAMP = "%Y%m%dT%H%M%SZ"
QDRANT_DIR = "qdrant-collections"
_STAMP_NAME = re.compile(r"^(\d{8}T\d{6}Z)(-\d+)?$")
_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def new_stamp(stack_dir: Path, now: datetime | None = None) -> str:
    """A fresh ``<UTC time>`` for this restore; its directory is made, so no other restore
    (nor a second one in the same second) moves data into it."""
    base = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    root = stack_dir / RESTORES
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # old env files hold secrets
    for n in range(1, 1000):
        stamp = base if n == 1 else f"{base}-{n}"
        try:
            (root / stamp).mkdir()
        except FileExistsError:
            continue
        return stamp
    raise RestoreRefused(f"{root} holds 999 restores made at {base}; remove some and retry.")


def kept_dir(stack_dir: Path, stamp: str) -> Path:
    return stack_dir / RESTORES / stamp


def holds_sbx_state(rel: str) -> bool:
    """A part path that is the stack itself, ``.sbx``, or under ``.sbx/restores``: renaming it
    aside would move the restore's own directory (and journal) into itself."""
    path = Path(os.path.normpath(rel))
    return RESTORES.is_relative_to(path) or path.is_relative_to(RESTORES)


def aside_path(stack_dir: Path, rel: str, stamp: str, suffix: str = "") -> Path:
    """Where the live ``<stack>/<rel>`` goes (see the module docstring): under the restore's
    directory when on its file system, else beside itself in ``.sbx-restores/``. An absolute
    ``rel`` is a path outside the stack: kept as ``outside/<its absolute path>``, the layout of
    the snapshot (tasks/backup/sources.py)."""
    rel = os.path.normpath(rel)
    live = stack_dir / rel
    home = kept_dir(stack_dir, stamp)
    if live.lstat().st_dev == home.stat().st_dev:
        return home / f"{_kept_name(rel)}{suffix}"
    return live.parent / OTHER_FS / stamp / f"{live.name}{suffix}"


def note_kept_elsewhere(stack_dir: Path, root: Path) -> None:
    """Remember ``root`` (a ``.sbx-restores`` beside a source outside the stack), so cleanup
    finds what a restore kept there."""
    known = _elsewhere(stack_dir)
    if str(root) not in known:
        data = json.dumps(sorted({*known, str(root)}), indent=1)
        write_state(stack_dir / ELSEWHERE, data, "the restore had not started")


def _elsewhere(stack_dir: Path) -> list[str]:
    try:
        found = json.loads((stack_dir / ELSEWHERE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [str(p) for p in found] if isinstance(found, list) else []


def shown_path(path: Path, stack_dir: Path) -> str:
    """``path`` relative to the stack when it lies in it, else absolute."""
    return str(path.relative_to(stack_dir)) if path.is_relative_to(stack_dir) else str(path)


def _kept_name(rel: str) -> str:
    return f"outside/{rel.lstrip('/')}" if Path(rel).is_absolute() else rel


def remove_if_empty(stack_dir: Path, stamp: str) -> None:
    """A restore that moved nothing aside (refused, failed early, undone) leaves no directory:
    its empty directories go, bottom up; anything holding data stays."""
    home = kept_dir(stack_dir, stamp)
    for root, _dirs, _files in os.walk(home, topdown=False):
        with contextlib.suppress(OSError):
            Path(root).rmdir()
    with contextlib.suppress(OSError):
        (stack_dir / RESTORES).rmdir()


def parse_span(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` as a timedelta; :class:`ConfigError` (exit 2) else."""
    found = _SPAN.match(text)
    if not found:
        raise ConfigError(
            f"--older-than {text!r} is not a span of time: give a whole number and a unit "
            "(s, m, h, d or w), e.g. 12h, 7d or 2w. Nothing was removed."
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


class KeptRestore(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # relative to the stack; absolute beside a source outside it
    made_at: datetime
    bytes: int


class CleanupReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    dry_run: bool
    older_than_s: float
    removed: list[KeptRestore]
    kept: list[KeptRestore]

    @property
    def freed_bytes(self) -> int:
        return sum(item.bytes for item in self.removed)


def _size(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:  # regular files and links; a hard link counted once
            st = (Path(root) / name).lstat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _kept_dirs(config: SbxConfig) -> list[tuple[Path, datetime]]:
    stack = config.stack_dir
    roots = {stack / RESTORES}
    roots |= {(stack / p).parent / OTHER_FS for part in config.parts.values() for p in part.paths}
    roots |= {Path(p) for p in _elsewhere(stack)}
    found = []
    for root in sorted(roots):
        if not root.is_dir() or root.is_symlink():
            continue
        for entry in sorted(root.iterdir()):
            match = _STAMP_NAME.match(entry.name)
            if match and entry.is_dir() and not entry.is_symlink():
                made = datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)
                found.append((entry, made))
    return found


def cleanup_restores(
    config: SbxConfig,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    spare: str | None = None,
    now: datetime | None = None,
) -> CleanupReport:
    """Remove the kept restores made more than ``older_than`` ago (never ``spare``, the one an
    in-place restore just made). Refused while a swap journal is open: its moves may point
    into one of them."""
    stack = config.stack_dir
    if (stack / SWAP_JOURNAL).exists():
        raise RestoreRefused(
            f"{stack / SWAP_JOURNAL} is open: an in-place restore is swapping, or was killed "
            "mid-swap. Run 'sbx status' (it finishes a killed swap), then clean up again. "
            "Nothing was removed."
        )
    cutoff = (now or datetime.now(UTC)) - older_than
    removed, kept = [], []
    for path, made in _kept_dirs(config):
        item = KeptRestore(path=shown_path(path, stack), made_at=made, bytes=_size(path))
        if made >= cutoff or path.name == spare:
            kept.append(item)
            continue
        removed.append(item)
        if not dry_run:
            shutil.rmtree(path)
            if path.parent.name == OTHER_FS and not any(path.parent.iterdir()):
                path.parent.rmdir()
    return CleanupReport(
        dry_run=dry_run, older_than_s=older_than.total_seconds(), removed=removed, kept=kept
    )


@task(name="remove-old-restores", cache_policy=NO_CACHE)
def remove_old_restores(
    config: SbxConfig, older_than: timedelta, *, dry_run: bool = False, spare: str | None = None
) -> CleanupReport:
    """Remove the kept restores older than ``older_than`` (see :func:`cleanup_restores`)."""
    return cleanup_restores(config, older_than, dry_run=dry_run, spare=spare)
