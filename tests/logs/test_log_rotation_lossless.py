"""No line lost: a writer process appends 1,000 lines/s while rotation cuts the live file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from log_helpers import StartWriter, check_every_line_once, read_all

from blocks.config import LogsConfig
from tasks.logs.directory import rotate_directory
from tasks.logs.fs import COLLAPSE_RANGE, PUNCH_HOLE, filesystem_type, probe_methods

RATE = 1000.0
SECONDS = 4.0


def rotate_under_writer(
    stack: Path, start_writer: StartWriter, settings: LogsConfig
) -> tuple[int, list[str]]:
    """Rotate every 0.15 s while the writer runs; (lines written, methods used)."""
    logs = stack / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    live = logs / "worker.log"
    writer = start_writer(live, RATE, SECONDS)
    methods = []
    rotations = 0
    while writer.poll() is None:
        time.sleep(0.15)
        if not live.exists():
            continue
        report = rotate_directory(stack, logs, [live], settings)
        methods.append(str(report.method))
        rotations += sum(f.action == "rotated" for f in report.files)
    out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    # and once more after the writer stopped, forced: the live file ends up (nearly) empty
    rotate_directory(stack, logs, [live], settings, force=True)
    assert rotations >= 3, f"only {rotations} rotations happened while the writer ran"
    return int(out), methods


@pytest.mark.parametrize("method", [COLLAPSE_RANGE, PUNCH_HOLE])
def test_no_line_lost_while_a_writer_appends_1000_lines_per_second(
    tmp_path: Path, start_writer: StartWriter, method: str
) -> None:
    if method not in probe_methods(tmp_path):
        pytest.fail(f"{filesystem_type(tmp_path)} at {tmp_path} lacks {method}")
    settings = LogsConfig(max_size=8192, keep=10_000, method=method)  # type: ignore[arg-type]
    written, methods = rotate_under_writer(tmp_path, start_writer, settings)
    assert set(methods) == {method}
    lines, padding = read_all(tmp_path / "logs" / "worker.log")
    check_every_line_once(lines, written)
    assert written == RATE * SECONDS
    assert len(padding) <= 1
    live = tmp_path / "logs" / "worker.log"
    if method == COLLAPSE_RANGE:
        assert live.stat().st_size < 8192  # the file really shrank
    else:
        assert live.stat().st_blocks * 512 < 64 * 1024  # space freed: the head is a hole


def test_auto_uses_punch_hole_on_tmpfs(start_writer: StartWriter) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm on this machine")
    stack = Path(os.environ.get("TMPDIR_SHM", shm)) / f"sbx-logs-test-{os.getpid()}"
    try:
        assert probe_methods(stack.parent) == [PUNCH_HOLE]  # tmpfs cannot collapse
        written, methods = rotate_under_writer(
            stack, start_writer, LogsConfig(max_size=8192, keep=10_000)
        )
        assert set(methods) == {PUNCH_HOLE}
        lines, _ = read_all(stack / "logs" / "worker.log")
        check_every_line_once(lines, written)
    finally:
        import shutil

        shutil.rmtree(stack, ignore_errors=True)
