"""An evidence bundle on disk: its folder, manifest, read-only seal, custody log and check.

A bundle is ``<stack>/.sbx/incidents/<id>/evidence/<UTC time>/``. Once every source is in it,
``MANIFEST.sha256`` lists the sha256 of every file (``sha256sum`` format, so ``sha256sum -c
MANIFEST.sha256`` in the bundle checks it without sbx); the bundle's hash is the sha256 of that
manifest file, written to the change log and the incident's actions. Then every file and folder
is made read-only. ``custody.log`` (who, when, what, one JSON object a line) is the one file the
manifest leaves out: preserve and verify-evidence append to it (it is read-only between appends).

Everything here is plain file work (no Docker, no Prefect): tested directly.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sbx.hashing import sha256_file
from tasks.changelog import current_flow_run_id

MANIFEST = "MANIFEST.sha256"
CUSTODY = "custody.log"
UNLISTED = frozenset({MANIFEST, CUSTODY})


class BundleCheck(BaseModel):
    """What checking a bundle against its manifest found."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    bundle: Path
    manifest_sha256: str | None  # None: no manifest to read
    files: int
    missing: list[str]
    extra: list[str]
    changed: list[str]

    @property
    def problems(self) -> list[str]:
        if self.manifest_sha256 is None:
            return [f"{MANIFEST} is missing"]
        return (
            [f"missing {p}" for p in self.missing]
            + [f"extra {p}" for p in self.extra]
            + [f"changed {p}" for p in self.changed]
        )


def new_bundle_dir(evidence_root: Path, now: datetime | None = None) -> Path:
    """A new, empty bundle folder named after the UTC time (a suffix when two share a second)."""
    base = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    evidence_root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = evidence_root / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free bundle name under {evidence_root} for {base}")


def latest_bundle(evidence_root: Path) -> Path | None:
    found = (
        sorted(p for p in evidence_root.iterdir() if p.is_dir()) if evidence_root.is_dir() else []
    )
    return found[-1] if found else None


def copy_tree(source: Path, dest: Path) -> tuple[int, int, list[str], list[str]]:
    """Copy the regular files under ``source`` to ``dest`` (streamed by the kernel, times kept);
    returns (files, bytes, notes, unreadable). Links are not followed (one could point
    anywhere): noted. A file that cannot be read is listed in ``unreadable``, the rest copied."""
    files = size = 0
    notes: list[str] = []
    unreadable: list[str] = []
    for root, dirs, names in os.walk(source):
        here = Path(root)
        target = dest / here.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in sorted(names) + [d for d in dirs if (here / d).is_symlink()]:
            path = here / name
            rel = path.relative_to(source).as_posix()
            if path.is_symlink():
                notes.append(f"{rel}: a symbolic link to {path.readlink()}, not followed")
            elif "\n" in name or "\\" in name:
                notes.append(f"{rel!r}: a name the manifest format cannot hold, not copied")
            elif path.is_file():
                try:
                    shutil.copy2(path, target / name)  # sendfile: never held in memory
                except OSError as exc:
                    (target / name).unlink(missing_ok=True)
                    unreadable.append(f"{rel} ({exc.strerror or exc})")
                    continue
                files += 1
                size += (target / name).stat().st_size
    return files, size, notes, unreadable


def _listed(bundle: Path) -> list[str]:
    return sorted(
        p.relative_to(bundle).as_posix()
        for p in bundle.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.relative_to(bundle).as_posix() not in UNLISTED
    )


def write_manifest(bundle: Path) -> str:
    """Write ``MANIFEST.sha256`` for every file of the bundle; returns the manifest's sha256."""
    lines = [f"{sha256_file(bundle / rel)}  {rel}\n" for rel in _listed(bundle)]
    (bundle / MANIFEST).write_text("".join(lines), encoding="utf-8")
    return sha256_file(bundle / MANIFEST)


def read_manifest(bundle: Path) -> dict[str, str]:
    listed = {}
    for line in (bundle / MANIFEST).read_text(encoding="utf-8").splitlines():
        digest, sep, rel = line.partition("  ")
        if sep:
            listed[rel] = digest
    return listed


def seal(bundle: Path) -> None:
    """Make every file and folder of the bundle read-only (folders last, deepest first)."""
    for root, dirs, names in os.walk(bundle, topdown=False):
        for name in names:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(0o444)
        for name in dirs:
            (Path(root) / name).chmod(0o555)
    bundle.chmod(0o555)


def append_custody(bundle: Path, what: str, **details: object) -> None:
    """One line of who/when/what on ``custody.log`` (created on first use, read-only after)."""
    path = bundle / CUSTODY
    entry = {
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "who": f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})",
        "flow_run_id": current_flow_run_id(),
        "what": what,
        **details,
    }
    existed = path.exists()
    if existed:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        path.chmod(0o444)


def verify_bundle(bundle: Path) -> BundleCheck:
    """Re-hash every file; list the missing, extra and changed ones against the manifest."""
    if not (bundle / MANIFEST).is_file():
        return BundleCheck(
            bundle=bundle, manifest_sha256=None, files=0, missing=[], extra=[], changed=[]
        )
    listed = read_manifest(bundle)
    present = set(_listed(bundle))
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    changed = sorted(
        rel
        for rel, digest in listed.items()
        if rel in present and ((bundle / rel).is_symlink() or sha256_file(bundle / rel) != digest)
    )
    return BundleCheck(
        bundle=bundle,
        manifest_sha256=sha256_file(bundle / MANIFEST),
        files=len(listed),
        missing=missing,
        extra=extra,
        changed=changed,
    )
