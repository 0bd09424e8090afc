"""The maintenance window and the journal files, without Docker (pure and file-level)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from blocks.config import AlertTarget
from tasks.alerts import STATE_FILE, AlertState, CheckMemory, plan_notices, save_state
from tasks.health.model import CheckResult, HealthReport
from tasks.upgrade.journal import (
    JournalEntry,
    Release,
    ServiceImage,
    close_entry,
    history,
    read_open,
    read_pins,
    save_open,
    write_pins,
)
from tasks.upgrade.maintenance import (
    WINDOW_FILE,
    MaintenanceWindow,
    maintenance_window,
    muted_checks,
)

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
TARGETS = {"pager": AlertTarget(block="custom-webhook/pager")}


def failing(check_id: str) -> CheckResult:
    family, _, target = check_id.partition(":")
    return CheckResult(id=check_id, family=family, target=target, state="failing", observed="down")


def report(*checks: CheckResult) -> HealthReport:
    return HealthReport(
        stack_dir=Path("/srv/stack"),
        project="stack",
        host="box",
        started_at=NOW,
        duration_s=0.1,
        checks=list(checks),
    )


def test_muted_checks_get_no_notice_and_alert_after_the_window() -> None:
    rep = report(failing("service:worker"), failing("service:qdrant"))
    notices = plan_notices(
        AlertState(), rep, TARGETS, NOW, timedelta(hours=4), frozenset({"service:worker"})
    )
    assert [n.check for n in notices] == ["service:qdrant"]
    after = plan_notices(AlertState(), rep, TARGETS, NOW, timedelta(hours=4))
    assert {n.check for n in after} == {"service:worker", "service:qdrant"}


def test_window_mutes_its_services_but_not_what_failed_before(tmp_path: Path) -> None:
    state = AlertState(checks={"container:worker": CheckMemory(failing=True, since=NOW)})
    (tmp_path / ".sbx").mkdir()
    save_state(tmp_path / STATE_FILE, state)
    told: list[str] = []
    ids = ["service:worker", "container:worker", "service:qdrant"]
    with maintenance_window(tmp_path, ["worker"], "sbx upgrade x", lambda s, b: told.append(s)):
        assert (tmp_path / WINDOW_FILE).is_file()
        assert muted_checks(tmp_path, ids) == {"service:worker"}
        assert told == ["sbx maintenance started: worker"]
    assert not (tmp_path / WINDOW_FILE).exists()
    assert muted_checks(tmp_path, ids) == frozenset()
    assert told[-1] == "sbx maintenance ended: worker"


def test_window_left_by_a_killed_process_mutes_nothing(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    window = MaintenanceWindow(
        reason="killed", services=["worker"], already_failing=[], pid=gone.pid
    )
    (tmp_path / WINDOW_FILE).parent.mkdir(parents=True)
    (tmp_path / WINDOW_FILE).write_text(window.model_dump_json())
    assert muted_checks(tmp_path, ["service:worker"]) == frozenset()


def _entry() -> JournalEntry:
    image = ServiceImage(service="worker", image_ref="r/vllm:stable", digest="r/vllm@sha256:aa")
    release = Release(images={"worker": image}, compose_files={}, env_fingerprints={}, models={})
    return JournalEntry(action="upgrade", services=["worker"], before=release)


def test_journal_open_then_closed_is_appended_once(tmp_path: Path) -> None:
    assert read_open(tmp_path) is None
    entry = save_open(tmp_path, _entry())
    assert read_open(tmp_path) == entry
    assert entry.writer_alive()
    closed = close_entry(tmp_path, entry, "committed")
    assert read_open(tmp_path) is None
    assert [e.id for e in history(tmp_path)] == [closed.id]
    assert history(tmp_path)[0].state == "committed"
    # a torn last line (a crash mid-append) is skipped, the rest still reads
    with (tmp_path / ".sbx" / "upgrade" / "journal.jsonl").open("a") as log:
        log.write('{"schema_version": 1, "id": "tor')
    assert len(history(tmp_path)) == 1


def test_pins_keep_other_services_and_round_trip(tmp_path: Path) -> None:
    write_pins(tmp_path, {"worker": "r/vllm@sha256:aa", "watchdog": "r/vllm@sha256:bb"})
    write_pins(tmp_path, {"worker": "r/vllm@sha256:cc"})
    assert read_pins(tmp_path) == {"worker": "r/vllm@sha256:cc", "watchdog": "r/vllm@sha256:bb"}
