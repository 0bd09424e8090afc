"""The proxy's API keys file (``config.incident.keys_file``, ``NAME KEY`` a line) and the one
form a key ever takes in sbx output: its fingerprint.

A key value never leaves this module: :class:`KeyEntry` keeps it as a ``SecretStr`` (its repr
is masked), and everything sbx prints, logs, saves or records names a key by ``NAME`` and
:func:`key_fingerprint`. The proxy image computes the same formula itself (docs/incident.md).

Rewriting the file (:func:`remove_keys`) keeps every other line as it was (comments, blank lines,
order, spacing) and replaces the file atomically (temporary file in the same folder, fsync,
rename), keeping its mode: the proxy reads it only at start, and a crash leaves the old file or
the new one, never half of one. The proxy mounts the folder, not the file, so a rename is seen.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from sbx.errors import ConfigError


def key_fingerprint(key: str) -> str:
    """``sha256:`` + the first 16 hex digits of SHA-256 of the key (issue #7 spec)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def is_fingerprint(text: str) -> bool:
    digits = text.removeprefix("sha256:")
    return (
        text.startswith("sha256:")
        and len(digits) == 16
        and all(c in "0123456789abcdef" for c in digits)
    )


class KeyEntry(BaseModel):
    """One key of the file: its name, fingerprint and 1-based line; the value stays masked."""

    model_config = ConfigDict(frozen=True)

    name: str
    fingerprint: str
    line: int
    value: SecretStr

    def label(self) -> str:
        return f"{self.name} ({self.fingerprint})"


def _parse_line(text: str) -> tuple[str, str] | None:
    body = text.strip()
    if not body or body.startswith("#"):
        return None
    parts = body.split()
    if len(parts) < 2:
        return None  # a name without a key: the proxy ignores it too
    return parts[0], parts[1]


def read_keys(path: Path) -> list[KeyEntry]:
    """Every key of the file in file order (an absent file holds none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for number, text in enumerate(lines, start=1):
        parsed = _parse_line(text)
        if parsed is not None:
            name, value = parsed
            entries.append(
                KeyEntry(
                    name=name,
                    fingerprint=key_fingerprint(value),
                    line=number,
                    value=SecretStr(value),
                )
            )
    return entries


def names_by_fingerprint(path: Path) -> dict[str, str]:
    return {entry.fingerprint: entry.name for entry in read_keys(path)}


def match_keys(entries: list[KeyEntry], wanted: str) -> list[KeyEntry]:
    """The keys ``wanted`` names: a NAME, or a fingerprint (``sha256:`` + 16 hex digits)."""
    if is_fingerprint(wanted):
        return [e for e in entries if e.fingerprint == wanted]
    return [e for e in entries if e.name == wanted]


def remove_keys(path: Path, fingerprints: set[str]) -> list[KeyEntry]:
    """Drop the lines holding these keys (by fingerprint); returns what was removed.

    Idempotent: a key already gone is simply not removed again; nothing is written then.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    kept: list[str] = []
    removed: list[KeyEntry] = []
    for number, text in enumerate(raw.splitlines(keepends=True), start=1):
        parsed = _parse_line(text)
        if parsed is not None and key_fingerprint(parsed[1]) in fingerprints:
            removed.append(
                KeyEntry(
                    name=parsed[0],
                    fingerprint=key_fingerprint(parsed[1]),
                    line=number,
                    value=SecretStr(parsed[1]),
                )
            )
            continue
        kept.append(text)
    if removed:
        write_atomic(path, "".join(kept))
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: same folder temporary file, fsync, rename; mode kept."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"Could not rewrite {path} ({exc.strerror or exc}); it was left as it was. Check "
            "that the folder is writable by this user, then run the step again."
        ) from exc
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
