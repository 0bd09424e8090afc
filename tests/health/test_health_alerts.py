"""Alert decisions (pure), the state file, and dependency suppression."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from health_helpers import report, result

from blocks.config import AlertTarget
from tasks.alerts import (
    AlertState,
    Notice,
    load_state,
    locked_state,
    plan_notices,
    remember,
    save_state,
)
from tasks.health.round import suppress

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TARGETS = {"pager": AlertTarget(block="custom-webhook/pager")}


def run(
    state: AlertState,
    checks: list,  # type: ignore[type-arg]
    now: datetime,
    targets: dict[str, AlertTarget] = TARGETS,
    deliver: bool = True,
) -> tuple[AlertState, list[Notice]]:
    rep = report(*suppress(checks))
    notices = plan_notices(state, rep, targets, now, reminder=4 * HOUR)
    done = [n for n in notices if deliver or not n.wanted]
    return remember(state, rep, done, now), notices


def test_change_only_failing_then_quiet_then_recovered() -> None:
    state, sent = run(AlertState(), [result("container:qdrant")], T0)
    assert sent == []
    state, sent = run(state, [result("container:qdrant", "failing")], T0 + HOUR / 12)
    assert [(n.check, n.event) for n in sent] == [("container:qdrant", "failing")]
    assert "container:qdrant" in sent[0].subject and "do the next thing" in sent[0].body
    assert "/srv/stack" in sent[0].body
    state, sent = run(state, [result("container:qdrant", "failing")], T0 + HOUR / 6)
    assert sent == []
    state, sent = run(state, [result("container:qdrant")], T0 + HOUR / 4)
    assert [(n.check, n.event) for n in sent] == [("container:qdrant", "recovered")]
    assert "recovered after" in sent[0].body
    state, sent = run(state, [result("container:qdrant")], T0 + HOUR / 3)
    assert sent == []


def test_reminder_after_the_interval_only() -> None:
    state, _ = run(AlertState(), [result("disk:stack", "failing")], T0)
    state, sent = run(state, [result("disk:stack", "failing")], T0 + 3 * HOUR)
    assert sent == []
    state, sent = run(state, [result("disk:stack", "failing")], T0 + 4 * HOUR)
    assert [n.event for n in sent] == ["reminder"]
    assert "STILL FAILING" in sent[0].subject and "for 4.0 h now" in sent[0].body
    state, sent = run(state, [result("disk:stack", "failing")], T0 + 5 * HOUR)
    assert sent == []


def test_a_failed_delivery_is_sent_again_next_run() -> None:
    state, sent = run(AlertState(), [result("disk:stack", "failing")], T0, deliver=False)
    assert [n.event for n in sent] == ["failing"]
    state, sent = run(state, [result("disk:stack", "failing")], T0 + HOUR / 12)
    assert [n.event for n in sent] == ["failing"]
    state, sent = run(state, [result("disk:stack", "failing")], T0 + HOUR / 6)
    assert sent == []


def test_a_failure_never_told_needs_no_recovery() -> None:
    state, _ = run(AlertState(), [result("disk:stack", "failing")], T0, deliver=False)
    state, sent = run(state, [result("disk:stack")], T0 + HOUR / 12)
    assert sent == []


def test_suppressed_child_sends_nothing_and_the_parent_names_it() -> None:
    checks = [
        result("container:qdrant", "failing"),
        result("service:qdrant", "failing", parents=["container:qdrant"]),
        result("service:open-webui", parents=["container:open-webui", "container:qdrant"]),
    ]
    state, sent = run(AlertState(), checks, T0)
    assert [(n.check, n.event) for n in sent] == [("container:qdrant", "failing")]
    assert "service:qdrant" in sent[0].body
    recovered = [result("container:qdrant"), result("service:qdrant", parents=["container:qdrant"])]
    state, sent = run(state, recovered, T0 + HOUR)
    assert [(n.check, n.event) for n in sent] == [("container:qdrant", "recovered")]


def test_child_failing_on_its_own_after_the_parent_recovers_alerts() -> None:
    down = [
        result("container:worker", "failing"),
        result("service:worker", "failing", parents=["container:worker"]),
    ]
    state, _ = run(AlertState(), down, T0)
    half = [result("container:worker"), down[1]]
    state, sent = run(state, half, T0 + HOUR / 12)
    assert [(n.check, n.event) for n in sent] == [
        ("container:worker", "recovered"),
        ("service:worker", "failing"),
    ]


def test_target_filters_events_but_remembers_them() -> None:
    targets = {"mail": AlertTarget(block="x/y", on=["failing"])}
    state, sent = run(AlertState(), [result("disk:stack", "failing")], T0, targets)
    assert [n.wanted for n in sent] == [True]
    state, sent = run(state, [result("disk:stack")], T0 + HOUR, targets)
    assert [(n.event, n.wanted) for n in sent] == [("recovered", False)]
    state, sent = run(state, [result("disk:stack")], T0 + 2 * HOUR, targets)
    assert sent == []


def test_suppression_walks_to_the_root_cause() -> None:
    checks = suppress(
        [
            result("docker:engine", "failing"),
            result("container:qdrant", "failing", parents=["docker:engine"]),
            result("service:qdrant", "failing", parents=["container:qdrant"]),
            result("service:worker", "failing", parents=["container:worker"]),
            result("container:worker", "ok", parents=["docker:engine"]),
        ]
    )
    by_id = {c.id: c for c in checks}
    assert by_id["docker:engine"].state == "failing"
    assert by_id["container:qdrant"].suppressed_by == "docker:engine"
    assert by_id["service:qdrant"].suppressed_by == "docker:engine"
    assert by_id["service:worker"].state == "failing"


def test_state_file_round_trip_and_damage(tmp_path: Path) -> None:
    rep = report(result("disk:stack", "failing"), stack=tmp_path)
    notices = plan_notices(AlertState(), rep, TARGETS, T0, 4 * HOUR)
    with locked_state(tmp_path) as (state, path):
        assert state == AlertState()
        save_state(path, remember(state, rep, notices, T0))
    saved = load_state(path)
    assert saved.checks["disk:stack"].targets["pager"].told == "failing"
    assert json.loads(path.read_text())["schema_version"] == 1
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    path.write_text("{not json")
    assert load_state(path) == AlertState()  # damaged: start afresh (at worst one re-alert)


def test_the_flow_failure_pickles_with_its_report() -> None:
    import pickle

    from sbx.errors import HealthChecksFailed

    failed = HealthChecksFailed(report(result("disk:stack", "failing")))
    again = pickle.loads(pickle.dumps(failed))
    assert str(again) == str(failed) and again.report == failed.report


def test_recovered_says_how_long_the_failure_lasted() -> None:
    """#23 finding 9: RECOVERED always said "after 0 s"."""
    state, _ = run(AlertState(), [result("container:qdrant", "failing")], T0)
    state, sent = run(state, [result("container:qdrant", "failing")], T0 + HOUR / 6)
    assert sent == []
    state, sent = run(state, [result("container:qdrant")], T0 + HOUR / 4)
    assert [n.event for n in sent] == ["recovered"]
    assert "recovered after 15 min." in sent[0].body, sent[0].body
    _, sent = run(state, [result("container:qdrant", "failing")], T0 + HOUR / 4 + HOUR / 60)
    assert [n.event for n in sent] == ["failing"]  # a new failure counts from now
