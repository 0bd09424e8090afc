"""Retention is a pure function: fixed-date tables, and properties that hold for any history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks.config import RetentionPolicy
from sbx.errors import PolicyRefused
from sbx.repository.retention import lock_days, plan_prune


def _snapshots(*stamps: str) -> list[tuple[str, datetime]]:
    """Ids named after their time, so the tables below read as dates."""
    return [(stamp, datetime.fromisoformat(stamp).replace(tzinfo=UTC)) for stamp in stamps]


def _policy(last: int = 0, daily: int = 0, weekly: int = 0, monthly: int = 0) -> RetentionPolicy:
    return RetentionPolicy(
        keep_last=last, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly
    )


# two snapshots a day, 2026-01-01 (Thursday) .. 2026-03-15
HISTORY = _snapshots(
    *(
        (datetime(2026, 1, 1, 2) + timedelta(days=d, hours=12 * h)).isoformat()
        for d in range(74)
        for h in range(2)
    )
)

TABLE = [
    ("keep last 3", _policy(last=3), ["2026-03-15T14:00:00", "2026-03-15T02:00:00",
                                      "2026-03-14T14:00:00"]),
    ("keep daily 3: newest of each of the last 3 days", _policy(daily=3),
     ["2026-03-15T14:00:00", "2026-03-14T14:00:00", "2026-03-13T14:00:00"]),
    ("keep weekly 3: ISO weeks end on Sunday (03-15, 03-08, 03-01)", _policy(weekly=3),
     ["2026-03-15T14:00:00", "2026-03-08T14:00:00", "2026-03-01T14:00:00"]),
    ("keep monthly 2", _policy(monthly=2), ["2026-03-15T14:00:00", "2026-02-28T14:00:00"]),
    ("keep monthly 12: only 3 months exist", _policy(monthly=12),
     ["2026-03-15T14:00:00", "2026-02-28T14:00:00", "2026-01-31T14:00:00"]),
    ("rules overlap", _policy(last=2, daily=2, monthly=2),
     ["2026-03-15T14:00:00", "2026-03-15T02:00:00", "2026-03-14T14:00:00",
      "2026-02-28T14:00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "policy", "kept"), TABLE, ids=[row[0] for row in TABLE])
def test_policy_table(name: str, policy: RetentionPolicy, kept: list[str]) -> None:
    plan = plan_prune(HISTORY, policy)
    assert list(plan.keep) == kept
    assert len(plan.remove) == len(HISTORY) - len(kept)


def test_reasons_name_every_rule_that_keeps_a_snapshot() -> None:
    plan = plan_prune(HISTORY, _policy(last=1, daily=1, weekly=1, monthly=1))
    assert plan.keep == {
        "2026-03-15T14:00:00": ["newest snapshot", "last 1", "daily 1", "weekly 1", "monthly 1"]
    }


def test_daily_counts_days_that_have_snapshots() -> None:
    gaps = _snapshots("2026-01-01T10:00:00", "2026-01-05T10:00:00", "2026-01-09T09:00:00",
                      "2026-01-09T10:00:00")  # fmt: skip
    plan = plan_prune(gaps, _policy(daily=2))
    assert list(plan.keep) == ["2026-01-09T10:00:00", "2026-01-05T10:00:00"]


def test_newest_and_protected_are_always_kept() -> None:
    plan = plan_prune(HISTORY, _policy(monthly=1), protected={"2026-01-10T02:00:00"})
    assert plan.keep == {
        "2026-03-15T14:00:00": ["newest snapshot", "monthly 1"],
        "2026-01-10T02:00:00": ["protected"],
    }


def test_a_policy_that_keeps_nothing_is_refused() -> None:
    with pytest.raises(PolicyRefused, match="would delete every snapshot") as caught:
        plan_prune(HISTORY, _policy())
    assert caught.value.exit_code == 2


def test_empty_history_and_input_order() -> None:
    assert plan_prune([], _policy(last=1)).keep == {}
    shuffled = HISTORY[::3] + HISTORY[1::3] + HISTORY[2::3]
    assert plan_prune(shuffled, _policy(daily=5)) == plan_prune(HISTORY, _policy(daily=5))


def test_local_times_are_compared_in_utc() -> None:
    tz = datetime.fromisoformat("2026-01-01T23:30:00+02:00")  # 21:30 UTC, still Jan 1st
    plan = plan_prune([("a", tz), ("b", datetime(2026, 1, 1, 22, tzinfo=UTC))], _policy(daily=5))
    assert list(plan.keep) == ["b"]


moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
histories = st.lists(moments, max_size=60).map(
    lambda times: [(f"s{index:03}", moment) for index, moment in enumerate(times)]
)
policies = st.builds(
    _policy,
    st.integers(0, 8),
    st.integers(0, 8),
    st.integers(0, 6),
    st.integers(0, 4),
).filter(lambda p: p.keep_last + p.keep_daily + p.keep_weekly + p.keep_monthly > 0)


@settings(max_examples=300, deadline=None)
@given(histories, policies, st.data())
def test_plan_properties(
    history: list[tuple[str, datetime]], policy: RetentionPolicy, data: st.DataObject
) -> None:
    ids = [snapshot_id for snapshot_id, _ in history]
    protected = set(data.draw(st.lists(st.sampled_from(ids), max_size=3))) if ids else set()
    plan = plan_prune(history, policy, protected)
    kept, removed = set(plan.keep), set(plan.remove)
    assert kept | removed == set(ids) and not kept & removed
    assert len(plan.remove) == len(removed)
    if history:
        newest = max(history, key=lambda item: (item[1], item[0]))[0]
        assert newest in kept
    assert protected <= kept
    assert len(kept) <= 1 + len(protected) + sum(
        (policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly)
    )
    # idempotent: planning again on what is left removes nothing more
    left = [item for item in history if item[0] in kept]
    again = plan_prune(left, policy, protected)
    assert again.remove == [] and set(again.keep) == kept


@settings(max_examples=100, deadline=None)
@given(policies, st.integers(0, 23))
def test_the_object_lock_period_covers_every_snapshot_the_policy_keeps(
    policy: RetentionPolicy, hour: int
) -> None:
    # a year and a half of nightly backups: none the policy keeps is older than the lock period
    # (docs/repository.md, "Object Lock"), so no kept snapshot's objects can have lost their lock
    now = datetime(2026, 12, 7, hour, 30, tzinfo=UTC)
    history = [
        (f"{now - timedelta(days=d):%Y%m%dT%H%M%SZ}-{d:08x}", now - timedelta(days=d))
        for d in range(550)
    ]
    when = dict(history)
    plan = plan_prune(history, policy)
    oldest = min(when[snapshot_id] for snapshot_id in plan.keep)
    assert (now - oldest).days < lock_days(policy), (policy, oldest)
    assert lock_days(policy, configured=1000) == 1000
