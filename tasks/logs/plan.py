"""Which log files exist, which are due, what their rotated files are called, which to delete.

Pure decisions over file names, sizes and the remembered state; the state of a log directory
(where each live file's lines begin after the last cut, when it was last rotated) is a small JSON
file under ``<stack>/.sbx/logs/``, one per directory, written atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from blocks.config import LogsConfig
from sbx.durable import write_state
from tasks.logs.rotate import EXTENSIONS
from tasks.units import human_bytes

STAMP = "%Y%m%dT%H%M%S.%f"
STAMP_GLOB = "[0-9]" * 8 + "T" + "[0-9]" * 6 + "." + "[0-9]" * 6


class FileState(BaseModel):
    model_config = ConfigDict(frozen=True)

    dev: int
    ino: int
    start: int = 0  # the log's lines begin here (collapse padding, or the punched hole's end)
    last_rotated: datetime | None = None
    first_seen: datetime


class DirectoryState(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    files: dict[str, FileState] = {}


def find_log_files(stack_dir: Path, globs: Iterable[str]) -> dict[Path, list[Path]]:
    """Regular files (not links) matching the globs, grouped by directory, both sorted."""
    found: dict[Path, set[Path]] = {}
    for pattern in globs:
        for path in stack_dir.glob(pattern):
            if path.is_file() and not path.is_symlink() and ".sbx" not in path.parts:
                found.setdefault(path.parent, set()).add(path)
    return {d: sorted(files) for d, files in sorted(found.items())}


def state_path(stack_dir: Path, directory: Path) -> Path:
    rel = directory.relative_to(stack_dir).as_posix()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel).strip("-") or "root"
    tag = hashlib.sha256(rel.encode()).hexdigest()[:8]
    return stack_dir / ".sbx" / "logs" / f"{slug}-{tag}.json"


def load_state(path: Path) -> DirectoryState:
    try:
        return DirectoryState.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError, ValueError):
        # lost or damaged state costs at most one blank line rotated, never a log line
        return DirectoryState()


def save_state(path: Path, state: DirectoryState, outcome: str) -> None:
    """Whole or not at all; a full disk raises :class:`NoSpace` (the file left as it was)."""
    write_state(path, state.model_dump_json(indent=1), outcome, fsync=False)


def rotated_pattern(live_name: str) -> re.Pattern[str]:
    exts = "|".join(re.escape(e) for e in EXTENSIONS.values() if e)
    return re.compile(rf"{re.escape(live_name)}-(\d{{8}}T\d{{6}}\.\d{{6}})Z(?:{exts})?")


def rotated_files(live: Path) -> list[tuple[datetime, Path]]:
    """The rotated files of a live log, oldest first, with the time each was cut."""
    pattern = rotated_pattern(live.name)
    found = []
    for path in live.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            stamp = datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)
            found.append((stamp, path))
    return sorted(found)


def rotated_name(live: Path, now: datetime, compression: str) -> Path:
    """``worker.log-20261127T020000.000000Z.zst``: sorts by time, never matches ``*.log``."""
    stamp = now.astimezone(UTC)
    while True:
        target = live.with_name(f"{live.name}-{stamp:{STAMP}}Z{EXTENSIONS[compression]}")
        if not target.exists():
            return target
        stamp += timedelta(microseconds=1)


def to_delete(rotated: list[tuple[datetime, Path]], keep: int) -> list[Path]:
    """Everything but the newest ``keep`` rotated files."""
    return [path for _, path in rotated[: max(0, len(rotated) - keep)]]


def due_reason(
    live_bytes: int,
    last_rotated: datetime | None,
    settings: LogsConfig,
    now: datetime,
    *,
    force: bool = False,
) -> tuple[bool, str]:
    """(due, why) — by size, by age since the last rotation, or forced."""
    size = f"{human_bytes(live_bytes)} of lines"
    if live_bytes <= 0:
        return False, "no lines since the last rotation"
    if force:
        return True, f"forced ({size})"
    if live_bytes >= settings.max_size:
        return True, f"{size} ≥ max_size {human_bytes(settings.max_size)}"
    if last_rotated is None:
        return False, f"{size}; first seen now: age counts from here"
    age_h = (now - last_rotated).total_seconds() / 3600
    if age_h >= settings.max_age_h:
        return True, f"last rotated {age_h:.1f} h ago ≥ max_age_h {settings.max_age_h:g}"
    return False, f"{size}, last rotated {age_h:.1f} h ago"
