"""Format v1 of an sbx repository: layout, constants, manifest models (see docs/repository.md).

A manifest is a frozen pydantic model with ``schema_version: 1``. It is written as JSON (ASCII
escapes, so file names that are not UTF-8 survive as their surrogate escapes) and validated on
load: unknown versions, truncated JSON, broken entries and duplicate paths are refused here;
whether paths are safe to restore is checked by ``safety.py`` before a restore touches anything.

One entry of a part (:class:`Entry`, its extents, limits and content hash) is ``entry.py``'s;
its names are imported from here like the rest of the format.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sbx.errors import ManifestInvalid, UnsupportedFormat
from sbx.repository.entry import (
    MAX_HOLES,
    MAX_XATTR_VALUE,
    MAX_XATTRS,
    Entry,
    EntryType,
    Extent,
    StatKey,
    extents_hash,
    hashed_by_extents,
    xattrs_problem,
)

FORMAT_NAME: Final = "sbx-repository"
FORMAT_VERSION: Final = 1
MANIFEST_SCHEMA_VERSION: Final = 1

REPOSITORY_FILE = "sbx-repository.json"
OBJECTS_PREFIX = "objects/"
SNAPSHOTS_PREFIX = "snapshots/"
LOCK_KEY = "locks/writer.json"

MiB = 1 << 20
DEFAULT_CHUNK_SIZE = 8 * MiB
DEFAULT_SMALL_FILE_LIMIT = 1 * MiB
DEFAULT_PACK_SIZE = 8 * MiB  # = chunk size: every object read or written in one go is <= 8 MiB

SNAPSHOT_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
OBJECT_ID_RE = re.compile(r"^[0-9a-f]{64}$")

PartStatus = Literal["captured", "skipped", "failed"]


def object_key(object_id: str) -> str:
    return f"{OBJECTS_PREFIX}{object_id[:2]}/{object_id}"


def snapshot_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}.json"


def new_snapshot_id(now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ-<8 hex>`` in UTC; ids sort by creation time.

    The hex part is the microsecond (5 hex digits) then 3 random ones, so two snapshots made in
    the same second still sort in order (``latest`` is the last id).
    """
    utc = now.astimezone(UTC)
    return f"{utc:%Y%m%dT%H%M%SZ}-{utc.microsecond:05x}{secrets.token_hex(2)[:3]}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RepositoryInfo(_Frozen):
    """``sbx-repository.json``: what a repository is and the parameters its objects were cut by."""

    format: Literal["sbx-repository"] = FORMAT_NAME
    version: Literal[1] = FORMAT_VERSION
    id: str
    created_at: datetime
    hash: Literal["blake3"] = "blake3"
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=4096, le=64 * MiB)
    small_file_limit: int = Field(default=DEFAULT_SMALL_FILE_LIMIT, ge=1)
    pack_size: int = Field(default=DEFAULT_PACK_SIZE, ge=4096, le=256 * MiB)

    @model_validator(mode="after")
    def _limits_fit(self) -> RepositoryInfo:
        # a small file must fit in the one block the writer reads before deciding how to store it
        if self.small_file_limit > self.chunk_size:
            raise ValueError("small_file_limit must not exceed chunk_size")
        return self


class Stats(_Frozen):
    """Counts for a part or a whole snapshot; ``bytes`` = ``new_bytes`` + ``reused_bytes``."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    skipped: int = Field(default=0, description="Sockets, fifos, devices, vanished files.")
    bytes: int = 0
    new_bytes: int = Field(default=0, description="Content bytes that went into new objects.")
    reused_bytes: int = Field(default=0, description="Content bytes found in existing objects.")
    new_objects: int = 0
    stored_bytes: int = Field(default=0, description="Bytes written to storage (compressed).")
    files_read: int = Field(default=0, description="Files opened and read (cache misses).")
    duration_s: float = 0.0

    @property
    def throughput_mib_s(self) -> float:
        return self.bytes / MiB / self.duration_s if self.duration_s > 0 else 0.0

    def plus(self, other: Stats) -> Stats:
        numbers = {name: getattr(self, name) + getattr(other, name) for name in Stats.model_fields}
        return Stats(**numbers)


class PartRecord(_Frozen):
    """One part of a snapshot: how it was captured, its outcome, and its entries."""

    name: str
    method: str
    status: PartStatus = "captured"
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    incomplete: list[str] | None = Field(
        default=None,
        description="Directories that vanished or were renamed while the backup read them: "
        "their subtrees are missing or partial, so the part is not a complete copy. None "
        "(left out of the JSON, which older sbx then still reads) when there were none.",
    )
    stats: Stats = Field(default_factory=Stats)
    # before entries: write_manifest streams the entries last
    parents: list[Entry] | None = Field(
        default=None,
        description="Directories above the part's paths, not in the part: restored with their "
        "owner, mode, xattrs and mtime where a restore creates them.",
    )
    entries: list[Entry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parents_are_dirs(self) -> PartRecord:
        for parent in self.parents or ():
            path = parent.path
            if parent.type != "dir" or path.startswith("/") or {"", ".", ".."} & {*path.split("/")}:
                raise ValueError(f"parent {path!r} is not a directory path below the stack")
        return self


class SnapshotManifest(_Frozen):
    """A snapshot: exists exactly when its manifest is stored (written last)."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    id: str = Field(pattern=SNAPSHOT_ID_RE.pattern)
    created_at: datetime
    finished_at: datetime
    host: str
    sbx_version: str
    stack_dir: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    box: dict[str, Any] = Field(default_factory=dict, description="Box state filled by flows.")
    parts: list[PartRecord] = Field(default_factory=list)
    stats: Stats = Field(default_factory=Stats)

    @model_validator(mode="after")
    def _unique(self) -> SnapshotManifest:
        names: set[str] = set()
        paths: dict[str, str] = {}
        for part in self.parts:
            if part.name in names:
                raise ValueError(f"part {part.name!r} appears twice")
            names.add(part.name)
            for entry in part.entries:
                if entry.path in paths:
                    raise ValueError(
                        f"path {entry.path!r} appears twice (parts {paths[entry.path]!r} "
                        f"and {part.name!r})"
                    )
                paths[entry.path] = part.name
        return self

    def part(self, name: str) -> PartRecord | None:
        return next((part for part in self.parts if part.name == name), None)

    def object_ids(self) -> set[str]:
        return {
            extent.object
            for part in self.parts
            for entry in part.entries
            for extent in entry.extents
        }


def dump_model(model: BaseModel) -> bytes:
    """A model as stored (manifests: ``manifest_json.dump_manifest``, the same text)."""
    return dump_json(model.model_dump(mode="json", exclude_none=True)).encode("ascii")


def dump_json(value: Any) -> str:
    # ASCII escapes round-trip lone surrogates (non-UTF-8 file names)
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def parse_repository_info(raw: bytes, where: str) -> RepositoryInfo:
    data = _load_json(raw, where, _REPOSITORY_STEP)
    if data.get("format") != FORMAT_NAME:
        raise ManifestInvalid(
            where, f"format is {data.get('format')!r}, expected {FORMAT_NAME!r}", _REPOSITORY_STEP
        )
    version = data.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise UnsupportedFormat(where, version, FORMAT_VERSION)
    try:
        return RepositoryInfo.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid(where, describe_error(exc), _REPOSITORY_STEP) from exc


# a damaged repository file is no reason to try another snapshot: every snapshot needs it
_REPOSITORY_STEP = (
    "Nothing was changed. Check that --repo names an sbx repository; if it does, its "
    "sbx-repository.json is damaged: take it from the off-box copy (same repository id)."
)


def _load_json(raw: bytes, where: str, next_step: str | None = None) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(where, f"it is truncated or not JSON ({exc})", next_step) from exc
    if not isinstance(data, dict):
        raise ManifestInvalid(where, "it is not a JSON object", next_step)
    return data


def describe_error(exc: ValidationError, where: str | None = None) -> str:
    """The first validation error: ``where`` (then the field inside it) or the field path, and
    what is wrong."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if where is None:
        return f"{field or 'the manifest'}: {message}"
    return f"{where}{f' ({field})' if field else ''}: {message}"


# the format, entries included (entry.py), is imported from here by the rest of sbx and the tests
__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PACK_SIZE",
    "DEFAULT_SMALL_FILE_LIMIT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LOCK_KEY",
    "MANIFEST_SCHEMA_VERSION",
    "MAX_HOLES",
    "MAX_XATTRS",
    "MAX_XATTR_VALUE",
    "OBJECTS_PREFIX",
    "OBJECT_ID_RE",
    "REPOSITORY_FILE",
    "SNAPSHOTS_PREFIX",
    "SNAPSHOT_ID_RE",
    "Entry",
    "EntryType",
    "Extent",
    "MiB",
    "PartRecord",
    "PartStatus",
    "RepositoryInfo",
    "SnapshotManifest",
    "StatKey",
    "Stats",
    "describe_error",
    "dump_json",
    "dump_model",
    "extents_hash",
    "hashed_by_extents",
    "new_snapshot_id",
    "object_key",
    "parse_repository_info",
    "snapshot_key",
    "xattrs_problem",
]
