"""The durable upgrade journal under ``<stack>/.sbx/upgrade/``: what ran before, what was tried.

An upgrade writes its entry (``open.json``) BEFORE it changes anything, rewrites it atomically at
each phase, and on its end appends the closed entry to ``journal.jsonl`` (append-only, fsynced)
then removes ``open.json``. A process killed at any moment therefore leaves either no open entry
or one that names the release to return to: the next mutating sbx flow finishes it
(flows/upgrade_reconcile.py). Prefect's transaction hooks run client-side and a SIGKILL runs none,
which is why this lives on disk (prefect-notes.md).

Env files are recorded as sha256 fingerprints, never their values; model settings come from
``read_model_settings`` (secret-looking keys are never read).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sbx.processes import boot_id, pid_alive

JOURNAL_DIR = Path(".sbx") / "upgrade"
OPEN = "open.json"
LOG = "journal.jsonl"
PINS = "pins.yml"
# backed up with the configs part (blocks/config.py); open.json never is: a restored open
# entry would make the next sbx command "finish" an upgrade that is not running
UPGRADE_LOG = JOURNAL_DIR / LOG
RESERVE = "reserve"
RESERVE_BYTES = 2 * 1024 * 1024  # what a rollback writes: entry, pins, log lines (far less)

EntryState = Literal["open", "committed", "rolled-back", "rollback-failed", "aborted"]
Phase = Literal["recorded", "pulled", "switched", "gating", "rolling-back", "done"]


class ServiceImage(BaseModel):
    """One service's image, pinned: ``digest`` is ``repo@sha256:…`` (never a moving tag)."""

    model_config = ConfigDict(frozen=True)

    service: str
    image_ref: str  # what the compose file asks for (a tag)
    digest: str  # repo@sha256:… to run or return to
    image_id: str | None = None


class Release(BaseModel):
    """What the box ran: images by digest, compose files and env files by hash, model settings."""

    model_config = ConfigDict(frozen=True)

    images: dict[str, ServiceImage]
    compose_files: dict[str, str]  # relative path -> sha256
    env_fingerprints: dict[str, str]  # env/NAME.env -> sha256 (never values)
    models: dict[str, dict[str, str]]


class DataUnit(BaseModel):
    """One unit of a service's data in a pre-upgrade snapshot (tasks/upgrade/data_units.py):
    a configured part, or a volume or bind mount of a part the compose model fills."""

    model_config = ConfigDict(frozen=True)

    part: str
    kind: Literal["part", "volume", "path"] = "part"
    location: str | None = None  # the volume's name, or the bind mount's host path
    stored_as: str | None = None  # its path in the snapshot
    image: str | None = None  # a volume's helper image
    services: list[str] = Field(default_factory=list)  # compose services that mount it


class JournalEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    action: Literal["upgrade", "rollback"]
    services: list[str]
    before: Release
    target: dict[str, ServiceImage] = Field(default_factory=dict)
    state: EntryState = "open"
    phase: Phase = "recorded"
    gate: str | None = None  # the gate that failed, when one did
    detail: str | None = None
    # the data of the changed services before the switch (tasks/upgrade/data.py)
    data_snapshot: str | None = None  # the pre-upgrade snapshot's id
    data_parts: list[str] = Field(default_factory=list)
    data_fingerprint: dict[str, str] = Field(default_factory=dict)  # unit key -> sha256
    data_units: dict[str, DataUnit] = Field(default_factory=dict)  # none: data_parts are units
    data: str | None = None  # what the rollback did with the data ("restored …", "unchanged …")
    pid: int = Field(default_factory=os.getpid)
    boot_id: str = Field(default_factory=boot_id)
    flow_run_id: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None

    def writer_alive(self) -> bool:
        """True while the process that opened this entry still runs (same boot)."""
        return self.boot_id == boot_id() and pid_alive(self.pid)


def journal_dir(stack_dir: Path) -> Path:
    return stack_dir / JOURNAL_DIR


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_fingerprints(stack_dir: Path) -> dict[str, str]:
    env = stack_dir / "env"
    files = sorted(env.glob("*.env")) if env.is_dir() else []
    return {p.relative_to(stack_dir).as_posix(): fingerprint(p) for p in files}


def read_open(stack_dir: Path) -> JournalEntry | None:
    """The open entry, if a run left one (cheap: one stat when there is none)."""
    path = journal_dir(stack_dir) / OPEN
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return JournalEntry.model_validate_json(text)


def save_open(stack_dir: Path, entry: JournalEntry) -> JournalEntry:
    _write_atomic(journal_dir(stack_dir) / OPEN, entry.model_dump_json(indent=2))
    return entry


def close_entry(
    stack_dir: Path, entry: JournalEntry, state: EntryState, **changes: object
) -> JournalEntry:
    """Append the finished entry to the log, then drop ``open.json`` (in that order: a crash in
    between leaves an open entry whose id the log already has, which reconcile recognises)."""
    closed = entry.model_copy(
        update={"state": state, "phase": "done", "ended_at": datetime.now(UTC), **changes}
    )
    folder = journal_dir(stack_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOG).open("a", encoding="utf-8") as handle:
        handle.write(closed.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    (folder / OPEN).unlink(missing_ok=True)
    return closed


def history(stack_dir: Path) -> list[JournalEntry]:
    """Closed entries, oldest first (a torn last line from a crash is skipped)."""
    path = journal_dir(stack_dir) / LOG
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(JournalEntry.model_validate_json(line))
        except ValueError:
            continue
    return entries


def reserve_space(stack_dir: Path) -> None:
    """Hold ``RESERVE_BYTES`` of real blocks in the journal's folder before anything changes.

    A full ``.sbx`` during the gate must not stop the rollback: its first act is
    :func:`release_space`, which frees what the rollback's own small writes need. Raises
    OSError when the space is not there (nothing was changed yet)."""
    path = journal_dir(stack_dir) / RESERVE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as handle:
            handle.write(b"\0" * RESERVE_BYTES)  # written, not truncated: no sparse file
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        raise


def release_space(stack_dir: Path) -> None:
    """Free the reserved space (no-op when none is held); never raises."""
    with contextlib.suppress(OSError):
        (journal_dir(stack_dir) / RESERVE).unlink(missing_ok=True)


def write_pins(stack_dir: Path, images: dict[str, str]) -> Path:
    """The compose override that pins each service to ``repo@sha256:…`` (the user's compose file
    is never edited). Services not named keep any pin they had."""
    path = journal_dir(stack_dir) / PINS
    pins = {**read_pins(stack_dir), **images}
    lines = ["# written by sbx upgrade/rollback: images pinned by digest (docs/upgrade.md)"]
    lines.append("services:")
    for service, digest in sorted(pins.items()):
        lines += [f"  {service}:", f"    image: {digest}"]
    _write_atomic(path, "\n".join(lines) + "\n")
    return path


def read_pins(stack_dir: Path) -> dict[str, str]:
    path = journal_dir(stack_dir) / PINS
    if not path.is_file():
        return {}
    pins, service = {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.strip().endswith(":"):
            service = line.strip()[:-1]
        elif line.startswith("    image: ") and service:
            pins[service] = line.removeprefix("    image: ").strip()
    return pins


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
