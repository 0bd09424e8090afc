"""The rotation step: one task per log directory (a lock, a filesystem probe, then each file)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.config import LogsConfig
from sbx.durable import is_no_space
from sbx.errors import CutRefused, LogRotationBusy, LogRotationError, NoSpace
from tasks.logs.fs import (
    COPYTRUNCATE,
    PUNCH_HOLE,
    block_size,
    filesystem_type,
    probe_methods,
)
from tasks.logs.plan import (
    STAMP_GLOB,
    DirectoryState,
    FileState,
    due_reason,
    load_state,
    rotated_files,
    rotated_name,
    save_state,
    state_path,
    to_delete,
)
from tasks.logs.report import GUARANTEES, LogDirectoryReport, LogFileResult
from tasks.logs.rotate import rotate_fd
from tasks.retry import retry_if_transient


@task(
    name="rotate-log-directory",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=[1, 3, 10],
    retry_condition_fn=retry_if_transient,
)
def rotate_log_directory(
    stack_dir: Path,
    directory: Path,
    files: list[Path],
    settings: LogsConfig,
    dry_run: bool = False,
    force: bool = False,
) -> LogDirectoryReport:
    """Rotate the due log files of one directory with the best lossless cut its filesystem has."""
    log = get_run_logger()
    report = rotate_directory(stack_dir, directory, files, settings, dry_run=dry_run, force=force)
    for f in report.files:
        log.info("%s: %s (%s)", f.path, f.action, f.reason)
        for name in f.deleted:
            log.info("%s: %s %s", f.path, "would delete" if dry_run else "deleted", name)
    return report


def rotate_directory(
    stack_dir: Path,
    directory: Path,
    files: list[Path],
    settings: LogsConfig,
    *,
    dry_run: bool = False,
    force: bool = False,
    now: datetime | None = None,
) -> LogDirectoryReport:
    """The task's body (callable without Prefect): lock, probe, rotate each file, keep N."""
    state_file = state_path(stack_dir, directory)
    with _directory_lock(state_file, directory, dry_run=dry_run):
        try:
            supported = probe_methods(directory)
        except OSError as exc:
            if is_no_space(exc):
                raise NoSpace(directory / ".sbx-fallocate-probe", "no log was cut") from exc
            raise LogRotationError(
                str(directory),
                f"cannot probe its filesystem with a scratch file ({exc})",
                "sbx needs write access to the log directory (run it as the stack's owner).",
            ) from exc
        method = choose_method(settings.method, supported)
        state = load_state(state_file)
        if not dry_run:  # the state's room first: a full .sbx refuses before any cut
            save_state(state_file, state, "no log was cut")
        kept: dict[str, FileState] = {}
        results = []
        for path in files:
            result, file_state = _rotate_one(
                stack_dir, path, method, state, settings, dry_run, force, now
            )
            results.append(result)
            if file_state is not None:
                kept[path.name] = file_state
        if not dry_run:
            _remove_stale_temporaries(directory)
            save_state(state_file, DirectoryState(files=kept), _CUT_UNSAVED)
    return LogDirectoryReport(
        directory=str(directory.relative_to(stack_dir)),
        filesystem=filesystem_type(directory),
        supported=supported,
        method=method,
        guarantee=GUARANTEES[method],
        files=results,
    )


_CUT_UNSAVED = (
    "the due logs were cut, every line kept, but their rotation state was not saved (the next "
    "rotation may keep one blank line more)"
)


def choose_method(configured: str, supported: list[str]) -> str | None:
    """auto: the first lossless method the filesystem has; a named one only if it has it."""
    if configured == COPYTRUNCATE:
        return COPYTRUNCATE
    if configured == "auto":
        return supported[0] if supported else None
    return configured if configured in supported else None


def _rotate_one(
    stack_dir: Path,
    path: Path,
    method: str | None,
    state: DirectoryState,
    settings: LogsConfig,
    dry_run: bool,
    force: bool,
    now: datetime | None,
) -> tuple[LogFileResult, FileState | None]:
    rel = str(path.relative_to(stack_dir))
    now = now or datetime.now(UTC)
    try:
        fd = os.open(path, (os.O_RDONLY if dry_run else os.O_RDWR) | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        return LogFileResult(path=rel, action="failed", reason=f"cannot open: {exc}"), None
    try:
        st = os.fstat(fd)
        known = state.files.get(path.name)
        if known is not None and (known.dev, known.ino) != (st.st_dev, st.st_ino):
            known = None  # a new file under the old name: nothing remembered applies
        start = _lines_start(fd, known, method)
        rotated = rotated_files(path)
        last = (known.last_rotated if known else None) or (rotated[-1][0] if rotated else None)
        since = last or (known.first_seen if known else None)
        due, why = due_reason(st.st_size - start, since, settings, now, force=force)
        file_state = FileState(
            dev=st.st_dev,
            ino=st.st_ino,
            start=start,
            last_rotated=last,
            first_seen=known.first_seen if known else now,
        )
        if not due:
            deleted = _keep_newest(rotated, settings.keep, dry_run)
            return LogFileResult(
                path=rel, action="kept", reason=why, live_size=st.st_size, deleted=deleted
            ), file_state
        if dry_run:
            deleted = [p.name for p in to_delete([*rotated, (now, path)], settings.keep)]
            return LogFileResult(
                path=rel, action="would-rotate", reason=why, live_size=st.st_size, deleted=deleted
            ), file_state
        if method is None:
            return LogFileResult(
                path=rel, action="refused", reason=GUARANTEES[None], live_size=st.st_size
            ), file_state
        target = rotated_name(path, now, settings.compress)
        try:
            cut = rotate_fd(fd, method, start, block_size(path.parent), target, settings.compress)
        except CutRefused as exc:
            return LogFileResult(
                path=rel, action="kept", reason=f"{why}, but {exc}", live_size=st.st_size
            ), file_state
        deleted = _keep_newest(rotated_files(path), settings.keep, dry_run)
        return LogFileResult(
            path=rel,
            action="rotated",
            reason=why,
            rotated_to=target.name,
            bytes_rotated=cut.copied,
            compressed_bytes=cut.compressed,
            cut_bytes=cut.removed,
            padding=cut.next_start if method != PUNCH_HOLE else 0,
            live_size=cut.size_after,
            deleted=deleted,
        ), file_state.model_copy(update={"start": cut.next_start, "last_rotated": now})
    except OSError as exc:
        return LogFileResult(path=rel, action="failed", reason=f"{exc}"), None
    finally:
        os.close(fd)


def _lines_start(fd: int, known: FileState | None, method: str | None) -> int:
    """Where the log's lines begin: after the padding or hole the last cut left."""
    size = os.fstat(fd).st_size
    if known is not None and 0 < known.start <= size:
        if method == PUNCH_HOLE:
            if os.pread(fd, 1, known.start - 1) == b"\0":
                return known.start
        elif os.pread(fd, known.start, 0) == b" " * (known.start - 1) + b"\n":
            return known.start  # the blanked tail the last collapse left
    if method == PUNCH_HOLE and size:
        return _hole_end(fd, size)
    return 0


def _hole_end(fd: int, size: int) -> int:
    # state lost: the first data byte that is not zero (a punched block reads as zeros)
    try:
        pos = os.lseek(fd, 0, os.SEEK_DATA)
    except OSError:
        return size  # ENXIO: all hole
    while pos < size:
        data = os.pread(fd, 1 << 16, pos)
        stripped = data.lstrip(b"\0")
        if stripped:
            return pos + len(data) - len(stripped)
        pos += len(data)
    return size


def _keep_newest(rotated: list[tuple[datetime, Path]], keep: int, dry_run: bool) -> list[str]:
    doomed = to_delete(rotated, keep)
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)
    return [p.name for p in doomed]


def _remove_stale_temporaries(directory: Path) -> None:
    # under the directory lock no other rotation is writing: any temporary is a crashed run's
    for kind in ("tmp", "raw"):
        for path in directory.glob(f".*-{STAMP_GLOB}Z*.{kind}-*"):
            path.unlink(missing_ok=True)


@contextmanager
def _directory_lock(state_file: Path, directory: Path, *, dry_run: bool) -> Iterator[None]:
    if dry_run:
        yield  # reads only: no lock, no state written
        return
    lock = state_file.with_suffix(".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LogRotationError(str(directory), f"cannot create its lock {lock}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LogRotationBusy(str(directory), str(lock)) from exc
        yield
    finally:
        os.close(fd)
