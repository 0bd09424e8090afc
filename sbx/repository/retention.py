"""Which snapshots to keep: a pure function of the snapshot list and the policy (invariant 6).

Semantics follow restic's ``forget``: walking the snapshots newest first, keep-last keeps the
first N; keep-daily keeps the newest snapshot of each of the N most recent days that have one
(weekly: ISO weeks, monthly: calendar months), a snapshot counting for every rule it satisfies.
Days, weeks and months are UTC, so a plan does not depend on the host's time zone. On top, the
newest snapshot and every protected one (e.g. the newest that passed a restore drill) are always
kept, and a policy that keeps nothing at all (every keep-* zero) is refused.

Applying a plan and planning again keeps everything that is left: each rule picks the same
snapshots from the kept set as from the full list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import PolicyRefused


class RetentionPolicy(BaseModel):
    """keep-last/daily/weekly/monthly counts (``[retention]`` in sbx.toml, the prune flags)."""

    # unknown keys are typos: refuse them instead of silently ignoring the operator's intent
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int = Field(default=7, ge=0, description="Newest N snapshots.")
    keep_daily: int = Field(default=7, ge=0, description="Newest snapshot of each of N days.")
    keep_weekly: int = Field(default=4, ge=0, description="Newest of each of N ISO weeks.")
    keep_monthly: int = Field(default=6, ge=0, description="Newest of each of N months.")


class PrunePlan(BaseModel):
    """What a prune would do; ``keep`` gives each kept snapshot's reasons."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    policy: RetentionPolicy
    keep: dict[str, list[str]] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


_Bucket = Callable[[datetime], tuple[int, ...]]
_RULES: tuple[tuple[str, str, _Bucket], ...] = (
    ("keep_daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("keep_monthly", "monthly", lambda t: (t.year, t.month)),
)


def plan_prune(
    snapshots: Iterable[tuple[str, datetime]],
    policy: RetentionPolicy,
    protected: Iterable[str] = (),
) -> PrunePlan:
    """Split ``snapshots`` (id, created_at) into kept (with reasons) and removed, newest first.

    Raises :class:`PolicyRefused` when every keep-* of ``policy`` is zero.
    """
    if not any((policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly)):
        raise PolicyRefused(
            "The retention policy keeps nothing (keep-last, keep-daily, keep-weekly and "
            "keep-monthly are all 0): it would delete every snapshot. Set at least one of them "
            "above 0. Nothing was deleted."
        )
    # newest first; the id breaks ties so the plan never depends on input order
    ordered = sorted(snapshots, key=lambda item: (_utc(item[1]), item[0]), reverse=True)
    guarded = set(protected)
    keep: dict[str, list[str]] = {}
    remaining = {attr: getattr(policy, attr) for attr, _, _ in _RULES}
    last_bucket: dict[str, tuple[int, ...] | None] = {attr: None for attr, _, _ in _RULES}
    for index, (snapshot_id, created_at) in enumerate(ordered):
        reasons: list[str] = []
        if index == 0:
            reasons.append("newest snapshot")
        if index < policy.keep_last:
            reasons.append(f"last {policy.keep_last}")
        when = _utc(created_at)
        for attr, label, bucket in _RULES:
            value = bucket(when)
            if remaining[attr] > 0 and value != last_bucket[attr]:
                last_bucket[attr] = value
                remaining[attr] -= 1
                reasons.append(f"{label} {getattr(policy, attr)}")
        if snapshot_id in guarded:
            reasons.append("protected")
        if reasons:
            keep[snapshot_id] = reasons
    remove = [snapshot_id for snapshot_id, _ in ordered if snapshot_id not in keep]
    return PrunePlan(policy=policy, keep=keep, remove=remove)


def _utc(moment: datetime) -> datetime:
    # naive timestamps are taken as UTC (manifests always carry a zone)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
