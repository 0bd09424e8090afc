"""Retention per part as a pure function (issue 18, findings 6 and 7): a snapshot counts only
for the parts it holds complete, and a damaged manifest never costs another snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from blocks.config import RetentionPolicy
from repository.helpers import PARTS
from sbx.errors import ConfigError
from sbx.repository.retention import Candidate, plan_prune, with_overrides

DAY0 = datetime(2026, 3, 1, 2, tzinfo=UTC)
ALL = frozenset(PARTS)


def _candidate(day: int, parts: frozenset[str], **extra: str) -> Candidate:
    return Candidate(id=f"s{day:02}", created_at=DAY0 + timedelta(days=day), parts=parts, **extra)


def test_partial_backups_do_not_push_out_the_only_full_copy() -> None:
    history = [_candidate(0, ALL)] + [_candidate(d, frozenset({"notes"})) for d in range(1, 8)]
    plan = plan_prune(history, RetentionPolicy())  # the default policy: 7 last, 7 daily ...
    assert "s00" in plan.keep, plan
    assert plan.keep["s00"] == [
        "last 7 (configs, data)",
        "daily 7 (configs, data)",
        "weekly 4 (configs, data, notes)",  # 2026-03-01 is a Sunday: a week of its own
        "monthly 6 (configs, data)",
    ]
    assert plan.remove == []  # notes: 7 copies, all within last 7


def test_a_failed_or_skipped_part_is_not_a_copy_of_that_part() -> None:
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    good = _candidate(0, ALL)
    data_failed = _candidate(1, ALL - {"data"})
    newest = _candidate(2, ALL - {"data"})
    plan = plan_prune([good, data_failed, newest], policy)
    assert plan.remove == ["s01"]
    assert plan.keep == {"s02": ["newest snapshot", "last 1 (configs, notes)"],
                         "s00": ["last 1 (data)"]}  # fmt: skip


def test_an_unreadable_manifest_is_kept_and_counts_as_a_copy_of_nothing() -> None:
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    older = _candidate(0, ALL)
    damaged = _candidate(1, frozenset(), unreadable="truncated")
    plan = plan_prune([older, damaged], policy)
    assert plan.remove == []
    assert plan.keep == {
        "s01": ["newest snapshot", "manifest unreadable"],
        "s00": ["last 1 (configs, data, notes)"],
    }


@pytest.mark.parametrize("flag", ["keep_last", "keep_daily", "keep_weekly", "keep_monthly"])
def test_a_negative_keep_is_refused_naming_the_flag(flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_overrides(RetentionPolicy(), {flag: -1})
    text = str(caught.value)
    assert f"--{flag.replace('_', '-')} is -1" in text and "0 or more" in text
    assert caught.value.exit_code == 2
    zeros = dict.fromkeys(RetentionPolicy.model_fields, 0)
    # a flag given replaces the configured policy whole (issue 20): the others are 0
    assert with_overrides(RetentionPolicy(), {flag: 2}) == RetentionPolicy(**(zeros | {flag: 2}))
    assert with_overrides(RetentionPolicy(), {flag: None}) == RetentionPolicy()
