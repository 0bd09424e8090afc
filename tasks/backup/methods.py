"""The consistency methods behind `capture_part` (see tasks/backup/capture.py for the overview)."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import ConsistencyMethod, PartConfig
from sbx.repository import PartWriter
from tasks.backup.context import CaptureContext, add_paths
from tasks.backup.sqlite_copy import SIDECAR_SUFFIXES, copy_database, is_sqlite_database
from tasks.backup.volumes import capture_volumes
from tasks.clients.docker_engine import connect as connect_docker
from tasks.clients.qdrant_ledger import STACK_LEDGER
from tasks.retry import retry_if_transient
from tasks.services import stopped_service

if TYPE_CHECKING:
    from pydantic import SecretStr

    from tasks.clients.qdrant import SnapshotFile

Method = Callable[[PartWriter, list[str], PartConfig, CaptureContext], None]
SUMS = "SHA256SUMS"
#: where Qdrant API snapshots are stored inside the part (restore recovers them through the API)
QDRANT_SNAPSHOT_DIR = ".sbx-api-snapshots"


def capture_copy(out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext) -> None:
    add_paths(out, ctx.stack_dir, paths, part)


def capture_models(
    out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext
) -> None:
    """Models are immutable: hash once (the stat cache skips unchanged files), keep SHA256SUMS."""
    add_paths(out, ctx.stack_dir, paths, part, sha256=True)
    sums = {e.path: e.sha256 for e in out.entries() if e.type == "file" and e.sha256}
    checked, written = [], []
    for rel in paths:
        root = ctx.stack_dir / rel
        model_dirs = (
            [d for d in sorted(root.iterdir()) if d.is_dir() and not d.is_symlink()]
            if root.is_dir() and not root.is_symlink()
            else []
        )
        for model_dir in model_dirs:
            prefix = f"{rel}/{model_dir.name}/"
            files = {
                p[len(prefix) :]: h
                for p, h in sums.items()
                if p.startswith(prefix) and not p.endswith(f"/{SUMS}")
            }
            sums_file = model_dir / SUMS
            if sums_file.is_symlink():
                # a link's target is data: reading or writing through it could reach outside
                # the stack (as root); the link itself is in the snapshot like any other
                out.warn(
                    f"{prefix}{SUMS} is a symlink; it was neither checked nor written. Replace "
                    "it with a regular file (or delete it) to have sbx keep the checksums."
                )
            elif sums_file.is_file():
                for name in _mismatches(sums_file, files):
                    out.warn(
                        f"{prefix}{name}: sha256 differs from {prefix}{SUMS} — the model "
                        "file changed or is damaged; compare it with its source"
                    )
                checked.append(model_dir.name)
            elif files:
                try:
                    write_sums(sums_file, files)
                except OSError as exc:
                    out.warn(
                        f"could not write {prefix}{SUMS} ({exc.strerror}); recorded in the "
                        "snapshot only"
                    )
                    continue
                out.add_file(f"{prefix}{SUMS}", sums_file)
                written.append(model_dir.name)
    out.detail.update(sha256sums_checked=checked, sha256sums_written=written)


def sums_line(name: str, digest: str) -> str:
    """One line of a SHA256SUMS file as GNU ``sha256sum`` writes it.

    A name with a backslash or a newline would be misread (or inject a line), so coreutils
    starts such a line with ``\\`` and writes those characters as ``\\\\`` and ``\\n``.
    """
    if "\\" in name or "\n" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def _unescape(name: str) -> str:
    out, chars = [], iter(name)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following == "n" else following)
        else:
            out.append(char)
    return "".join(out)


def write_sums(sums_file: Path, files: dict[str, str]) -> None:
    """Write ``sums_file`` atomically: a temporary file beside it, then a rename.

    Both go through a handle on the model directory opened without following a link, and the
    rename replaces a directory entry: whatever link appears at the directory or at
    ``sums_file`` meanwhile is never written through; a crash leaves no half-written file.
    """
    lines = "".join(sums_line(name, digest) for name, digest in sorted(files.items()))
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(sums_file.parent, flags)
    tmp = f".{SUMS}.{secrets.token_hex(6)}"
    try:
        create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, create, 0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            os.fchmod(fd, 0o644)  # not narrowed by the umask: a SHA256SUMS is for all to read
            handle.write(lines)
            handle.flush()
            os.fsync(fd)
        os.rename(tmp, sums_file.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)


def read_sums(sums_file: Path) -> list[tuple[str, str]]:
    """(name, lowercase digest) of each line of a ``sha256sum`` file, escaped names undone."""
    found = []
    text = sums_file.read_text(encoding="utf-8", errors="surrogateescape")
    for raw in text.split("\n"):  # not splitlines: a name may hold \r, \x1c, ...
        line = raw.strip()
        escaped = line.startswith("\\")
        digest, _, name = line.removeprefix("\\").partition("  ")
        name = name.removeprefix("*")
        if name:
            found.append((_unescape(name) if escaped else name, digest.lower()))
    return found


def _mismatches(sums_file: Path, files: dict[str, str]) -> list[str]:
    return [name for name, digest in read_sums(sums_file) if files.get(name, digest) != digest]


@task(
    name="download-qdrant-snapshot",
    task_run_name="qdrant-snapshot-{collection}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def download_qdrant_snapshot(
    url: str,
    collection: str,
    dest: Path,
    stall_s: float | None = None,
    ledger: Path | None = None,
    api_key: SecretStr | None = None,
) -> SnapshotFile:
    """Snapshot one collection into ``dest``; the snapshot is deleted on the server whatever
    happens, and a retry never leaves a second one there (``ledger``: see qdrant_ledger)."""
    from tasks.clients.qdrant import connect as connect_qdrant

    with connect_qdrant(url, api_key=api_key) as qdrant:
        return qdrant.snapshot_to_file(collection, dest, stall_s=stall_s, ledger=ledger)


def capture_qdrant(
    out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext
) -> None:
    """Snapshot API when Qdrant answers (no downtime); else stop-copy-start; else copy."""
    svc = ctx.service(part.service)
    if svc is not None and svc.ok and svc.url:
        # imported here: qdrant-client costs ~1.5 s of start-up, needed only when Qdrant answers
        from tasks.clients.qdrant import connect as connect_qdrant

        key = svc.credentials.api_key
        with connect_qdrant(svc.url, api_key=key) as qdrant:
            version, collections = qdrant.version(), qdrant.collections()
        counts = {}
        with tempfile.TemporaryDirectory(prefix="sbx-qdrant-") as tmp:
            for name in collections:
                snap = download_qdrant_snapshot(
                    svc.url, name, Path(tmp), ctx.config.qdrant_snapshot_stall_s,
                    ctx.stack_dir / STACK_LEDGER, key,
                )  # fmt: skip
                # sha256 too: restore and drill send it with the upload, and Qdrant checks it
                out.add_file(
                    f"{paths[0]}/{QDRANT_SNAPSHOT_DIR}/{name}.snapshot", snap.path, sha256=True
                )
                snap.path.unlink()
                counts[name] = snap.points
        out.detail.update(mode="snapshot-api", qdrant_version=version, collections=counts)
        return
    capture_stopped(out, paths, part, ctx)


def capture_stopped(
    out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext
) -> None:
    """Stop the part's service, copy, start it again (always); copy as is if it is not running."""
    svc = ctx.service(part.service)
    if svc is None or ctx.status is None or svc.container is None:
        add_paths(out, ctx.stack_dir, paths, part)
        out.detail.update(mode="copy", note="service not running or Docker not reachable")
        return
    with (
        connect_docker() as engine,
        stopped_service(
            engine,
            ctx.stack_dir,
            ctx.status.project,
            svc.compose_service,
            reason=f"sbx backup: cold copy of part {out.name}",
        ) as was_running,
    ):
        add_paths(out, ctx.stack_dir, paths, part)
    out.detail.update(mode="stop-copy-start" if was_running else "copy")


def capture_sqlite(
    out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext
) -> None:
    """Databases through SQLite's online backup (WAL-safe); everything else copied."""
    databases = [
        db for rel in paths for db in _walk_files(ctx.stack_dir / rel) if is_sqlite_database(db)
    ]
    # exact paths, not patterns: a glob would also leave out an upload named like a database
    # (or any ``*.db``), and a database named ``web[ui].db`` would not match itself
    live = {
        rel: {
            db.relative_to(ctx.stack_dir / rel).as_posix() + suffix
            for db in databases
            if db.is_relative_to(ctx.stack_dir / rel)
            for suffix in ("", *SIDECAR_SUFFIXES)
        }
        for rel in paths
    }
    add_paths(out, ctx.stack_dir, paths, part, exclude_paths=live)
    copies = {}
    with tempfile.TemporaryDirectory(prefix="sbx-sqlite-") as tmp:
        for index, db in enumerate(databases):
            copy = copy_database(db, Path(tmp) / f"{index}.db")
            st = db.stat()
            rel = str(db.relative_to(ctx.stack_dir))
            out.add_file(
                rel,
                copy.copy_path,
                mode=st.st_mode & 0o7777,
                mtime_ns=st.st_mtime_ns,
                uid=st.st_uid,
                gid=st.st_gid,
            )
            copies[rel] = {"integrity": copy.integrity, "tables": copy.tables}
    out.detail.update(mode="sqlite-online-backup", databases=copies)


def _walk_files(root: Path) -> list[Path]:
    if root.is_file() and not root.is_symlink():
        return [root]
    if not root.is_dir() or root.is_symlink():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


METHODS: dict[ConsistencyMethod, Method] = {
    ConsistencyMethod.COPY: capture_copy,
    ConsistencyMethod.GROWING_LOG: capture_copy,
    ConsistencyMethod.IMMUTABLE: capture_models,
    ConsistencyMethod.QDRANT_SNAPSHOT: capture_qdrant,
    ConsistencyMethod.SQLITE_ONLINE: capture_sqlite,
    ConsistencyMethod.STOP_COPY: capture_stopped,
    ConsistencyMethod.DOCKER_VOLUME: capture_volumes,
}
