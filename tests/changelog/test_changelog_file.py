"""The change log file on its own: append, read, and every way of tampering verify must catch."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from tasks.changelog import (
    GENESIS,
    HEAD_FILE,
    append_change,
    entry_hash,
    log_path,
    read_changes,
    verify_changes,
)


def _fill(stack: Path, n: int = 4) -> None:
    for i in range(n):
        append_change(
            stack,
            action="model-swap",
            target="worker",
            before={"model": f"m{i}"},
            after={"model": f"m{i + 1}"},
            flow_run_id=f"run-{i}",
        )


def _lines(stack: Path) -> list[bytes]:
    return log_path(stack).read_bytes().splitlines(keepends=True)


def test_entries_chain_and_read_back(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    entries = read_changes(tmp_path)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].before == {"model": "m2"}
    assert entries[2].flow_run_id == "run-2"
    assert entry_hash(entries[1].model_dump()) == entries[1].hash
    report = verify_changes(tmp_path)
    assert report.intact, report.describe()
    assert report.entries == 3
    assert report.head_hash == entries[2].hash


def test_no_flow_run_outside_prefect(tmp_path: Path) -> None:
    entry = append_change(tmp_path, action="restore", target="stack")
    assert entry.flow_run_id is None


def test_empty_log_is_intact(tmp_path: Path) -> None:
    report = verify_changes(tmp_path)
    assert report.intact
    assert report.entries == 0
    assert read_changes(tmp_path) == []


def test_one_edited_byte_names_the_entry(tmp_path: Path) -> None:
    _fill(tmp_path)
    raw = bytearray(log_path(tmp_path).read_bytes())
    third = _lines(tmp_path)[2]
    at = raw.index(third) + third.index(b'"m3"') + 2  # the digit of "m3" in entry 3's after
    raw[at] = ord("9")
    log_path(tmp_path).write_bytes(bytes(raw))
    report = verify_changes(tmp_path)
    assert not report.intact
    assert (report.bad_line, report.bad_seq) == (3, 3)
    assert "edited" in (report.problem or "")
    assert "line 3 (seq 3)" in report.describe()


def test_removed_entry(tmp_path: Path) -> None:
    _fill(tmp_path)
    lines = _lines(tmp_path)
    log_path(tmp_path).write_bytes(b"".join(lines[:1] + lines[2:]))
    report = verify_changes(tmp_path)
    assert not report.intact
    assert (report.bad_line, report.bad_seq) == (2, 3)


def test_reordered_entries(tmp_path: Path) -> None:
    _fill(tmp_path)
    lines = _lines(tmp_path)
    log_path(tmp_path).write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    report = verify_changes(tmp_path)
    assert not report.intact
    assert report.bad_line == 2


def test_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(tmp_path: Path) -> None:
    """An editor who recomputes the edited entry's hash is caught by the entry after it."""
    _fill(tmp_path)
    lines = _lines(tmp_path)
    data = json.loads(lines[1])
    data["after"] = {"model": "forged"}
    data["hash"] = entry_hash(data)
    lines[1] = json.dumps(data).encode() + b"\n"
    log_path(tmp_path).write_bytes(b"".join(lines))
    report = verify_changes(tmp_path)
    assert (report.intact, report.bad_line, report.bad_seq) == (False, 3, 3)


def test_last_line_cut_short(tmp_path: Path) -> None:
    _fill(tmp_path)
    raw = log_path(tmp_path).read_bytes()
    log_path(tmp_path).write_bytes(raw[:-20])
    report = verify_changes(tmp_path)
    assert (report.intact, report.bad_line) == (False, 4)
    assert "parse" in (report.problem or "")


def test_removed_tail_caught_by_the_head_copy(tmp_path: Path) -> None:
    _fill(tmp_path)
    lines = _lines(tmp_path)
    log_path(tmp_path).write_bytes(b"".join(lines[:2]))
    report = verify_changes(tmp_path)
    assert not report.intact
    assert report.bad_line is None
    assert "removed from the end" in (report.problem or "")
    # the same check against a copy kept elsewhere (e.g. the Prefect Variable)
    (tmp_path / HEAD_FILE).unlink()
    assert verify_changes(tmp_path).intact  # without any copy a shorter chain is undetectable
    head = read_changes(tmp_path)[-1]
    assert not verify_changes(tmp_path, anchor=f"4 {'a' * 64}").intact
    assert verify_changes(tmp_path, anchor=f"{head.seq} {head.hash}").intact


def test_stale_head_copy_is_not_tampering(tmp_path: Path) -> None:
    """A crash between writing the line and the head leaves the copy one entry behind: fine."""
    _fill(tmp_path, 2)
    first = read_changes(tmp_path)[0]
    (tmp_path / HEAD_FILE).write_text(f"{first.seq} {first.hash}\n")
    assert verify_changes(tmp_path).intact


def test_append_after_a_cut_line_starts_a_new_line(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    raw = log_path(tmp_path).read_bytes()
    log_path(tmp_path).write_bytes(raw[:-10])  # the crash case: second line cut short
    entry = append_change(tmp_path, action="restore", target="stack")
    assert entry.seq == 2  # chained onto the last entry that parses
    assert [e.seq for e in read_changes(tmp_path)] == [1, 2]
    report = verify_changes(tmp_path)
    assert (report.intact, report.bad_line) == (False, 2)  # the cut line stays visible


def _append_many(stack: str, who: int, n: int) -> None:
    for i in range(n):
        append_change(Path(stack), action="test", target=f"p{who}", after=i, flow_run_id="x")


def test_concurrent_appenders_keep_one_chain(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 15)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = verify_changes(tmp_path)
    assert report.intact, report.describe()
    assert report.entries == 45
    assert sorted(e.seq for e in read_changes(tmp_path)) == list(range(1, 46))
