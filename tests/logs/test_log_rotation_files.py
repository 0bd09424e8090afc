"""Rotation of one directory, step by step: compression, padding, state, keep N, dry run, age."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from log_helpers import check_every_line_once, read_all
from writer import line

from blocks.config import LogsConfig
from tasks.logs.directory import rotate_directory
from tasks.logs.fs import COLLAPSE_RANGE, COPYTRUNCATE, PUNCH_HOLE, filesystem_type
from tasks.logs.plan import find_log_files, rotated_files, state_path
from tasks.logs.rotate import open_rotated

T0 = datetime(2026, 11, 27, 0, 15, tzinfo=UTC)


def append(path: Path, first: int, count: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for n in range(first, first + count):
            os.write(fd, line(n))
    finally:
        os.close(fd)
    return first + count


def stack_with_log(tmp_path: Path) -> tuple[Path, Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    return tmp_path, logs, logs / "worker.log"


@pytest.mark.parametrize("compress", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("method", [COLLAPSE_RANGE, PUNCH_HOLE, COPYTRUNCATE])
def test_rounds_of_appends_and_rotations_keep_every_line(
    tmp_path: Path, compress: str, method: str
) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    settings = LogsConfig(max_size=20_000, keep=100, compress=compress, method=method)  # type: ignore[arg-type]
    n = 0
    for round_ in range(6):
        n = append(live, n, 150 + 37 * round_)
        report = rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(minutes=round_))
        assert report.method == method
    lines, padding = read_all(live)
    check_every_line_once(lines, n)
    assert len(padding) <= 1
    rotated = rotated_files(live)
    assert len(rotated) >= 3
    ext = {"zstd": ".zst", "gzip": ".gz", "none": ""}[compress]
    assert all(p.name.endswith(f"Z{ext}") for _, p in rotated)
    if method == COLLAPSE_RANGE:
        assert live.stat().st_size < 20_000 + 4096


def test_the_padding_a_collapse_leaves_is_one_blank_line_and_is_skipped_next_time(
    tmp_path: Path,
) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    settings = LogsConfig(max_size=4096, keep=100)
    n = append(live, 0, 200)
    first = rotate_directory(stack, logs, [live], settings, now=T0).files[0]
    assert first.action == "rotated" and first.cut_bytes % 4096 == 0
    head = live.read_bytes()[: first.padding]
    if first.padding:  # the block boundary fell inside a line: its tail is blanked
        assert head == b" " * (first.padding - 1) + b"\n"
    n = append(live, n, 200)
    rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(seconds=1))
    for _, path in rotated_files(live):
        with open_rotated(path) as stream:
            assert not any(not raw.strip() for raw in stream.read().splitlines())
    lines, _ = read_all(live)
    check_every_line_once(lines, n)


def test_lost_state_costs_a_blank_line_at_most(tmp_path: Path) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    settings = LogsConfig(max_size=4096, keep=100)
    n = append(live, 0, 300)
    rotate_directory(stack, logs, [live], settings, now=T0)
    state_path(stack, logs).unlink()
    n = append(live, n, 300)
    rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(seconds=1), force=True)
    lines, _ = read_all(live)
    numbered = [raw for raw in lines if raw.strip()]
    assert len(lines) - len(numbered) <= 1  # the old padding, rotated as a blank line
    check_every_line_once(numbered, n)


def test_keep_deletes_the_oldest_and_dry_run_touches_nothing(tmp_path: Path) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    settings = LogsConfig(max_size=4096, keep=2)
    n = 0
    for i in range(4):
        n = append(live, n, 200)
        rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(hours=i))
    names = [p.name for _, p in rotated_files(live)]
    assert len(names) == 2 and names[0].startswith("worker.log-20261127T021500")
    n = append(live, n, 200)
    before = {p.name: p.read_bytes() for p in logs.iterdir()}
    report = rotate_directory(
        stack, logs, [live], settings, dry_run=True, now=T0 + timedelta(hours=5)
    )
    assert report.files[0].action == "would-rotate"
    assert report.files[0].deleted == [names[0]]
    assert {p.name: p.read_bytes() for p in logs.iterdir()} == before


def test_age_rotates_a_small_log_a_day_after_the_last_rotation(tmp_path: Path) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    settings = LogsConfig(keep=5)  # 100 MiB, 24 h
    append(live, 0, 100)
    first = rotate_directory(stack, logs, [live], settings, now=T0).files[0]
    assert first.action == "kept" and "first seen" in first.reason  # as logrotate: age starts now
    append(live, 100, 100)
    later = rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(hours=23)).files[0]
    assert later.action == "kept"
    due = rotate_directory(stack, logs, [live], settings, now=T0 + timedelta(hours=25)).files[0]
    assert due.action == "rotated" and "max_age_h" in due.reason


def test_a_log_smaller_than_a_block_waits_for_collapse(tmp_path: Path) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    append(live, 0, 10)
    report = rotate_directory(stack, logs, [live], LogsConfig(), force=True, now=T0)
    assert report.files[0].action == "kept" and "no complete line" in report.files[0].reason
    assert len(live.read_bytes().splitlines()) == 10


def test_a_named_method_the_filesystem_lacks_is_refused_not_downgraded() -> None:
    shm = Path("/dev/shm")
    if filesystem_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm on this machine")
    stack = shm / f"sbx-logs-refused-{os.getpid()}"
    try:
        (stack / "logs").mkdir(parents=True)
        live = stack / "logs" / "worker.log"
        append(live, 0, 500)
        settings = LogsConfig(max_size=4096, method=COLLAPSE_RANGE)
        report = rotate_directory(stack, stack / "logs", [live], settings, now=T0)
        assert report.method is None and report.files[0].action == "refused"
        assert "copytruncate" in report.files[0].reason
        assert len(live.read_bytes().splitlines()) == 500
    finally:
        import shutil

        shutil.rmtree(stack, ignore_errors=True)


def test_find_log_files_groups_by_directory_and_ignores_rotated_and_links(tmp_path: Path) -> None:
    (tmp_path / "logs" / "proxy").mkdir(parents=True)
    for rel in ("logs/worker.log", "logs/proxy/access.log", "logs/worker.log.1"):
        (tmp_path / rel).write_text("x\n")
    (tmp_path / "logs" / "worker.log-20261127T001500.000000Z.zst").write_bytes(b"")
    (tmp_path / "logs" / "link.log").symlink_to(tmp_path / "logs" / "worker.log")
    found = find_log_files(tmp_path, ["logs/**/*.log"])
    assert found == {
        tmp_path / "logs": [tmp_path / "logs" / "worker.log"],
        tmp_path / "logs" / "proxy": [tmp_path / "logs" / "proxy" / "access.log"],
    }


def test_a_crashed_runs_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    stack, logs, live = stack_with_log(tmp_path)
    append(live, 0, 10)
    stale = logs / ".worker.log-20261127T001500.000000Z.zst.tmp-999"
    stale.write_bytes(b"half a copy")
    foreign = logs / ".editor.swp.tmp-1"
    foreign.write_bytes(b"not ours")
    rotate_directory(stack, logs, [live], LogsConfig(), now=T0)
    assert not stale.exists() and foreign.exists()
