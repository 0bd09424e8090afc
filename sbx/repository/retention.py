"""Which snapshots to keep: a pure function of the snapshot list and the policy (invariant 6).

Semantics follow restic's ``forget``: walking the snapshots newest first, keep-last keeps the
first N; keep-daily keeps the newest snapshot of each of the N most recent days that have one
(weekly: ISO weeks, monthly: calendar months), a snapshot counting for every rule it satisfies.
Days, weeks and months are UTC, so a plan does not depend on the host's time zone.

The policy applies per part, as restic groups snapshots by their paths: a snapshot is a copy of
exactly the parts it holds complete (a part skipped or failed in it does not count), and the rules
run over each part's copies on their own. So seven ``sbx backup --part notes`` never push the only
full backup out of keep-last 7, and the newest complete copy of every part is always kept (every
rule keeps the newest of what it walks). On top, the newest snapshot, every protected one (e.g.
the newest that passed a restore drill) and every snapshot whose manifest cannot be read are
always kept: an unreadable manifest counts as a copy of nothing, so it never makes another
snapshot look redundant, and it is not deleted blindly either. A policy that keeps nothing at all
(every keep-* zero) is refused.

Applying a plan and planning again keeps everything that is left: each rule picks the same
snapshots from a part's kept copies as from all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sbx.errors import ConfigError, PolicyRefused


class RetentionPolicy(BaseModel):
    """keep-last/daily/weekly/monthly counts (``[retention]`` in sbx.toml, the prune flags)."""

    # unknown keys are typos: refuse them instead of silently ignoring the operator's intent
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int = Field(default=7, ge=0, description="Newest N snapshots.")
    keep_daily: int = Field(default=7, ge=0, description="Newest snapshot of each of N days.")
    keep_weekly: int = Field(default=4, ge=0, description="Newest of each of N ISO weeks.")
    keep_monthly: int = Field(default=6, ge=0, description="Newest of each of N months.")


def lock_days(policy: RetentionPolicy, configured: int | None = None) -> int:
    """Days an off-box object must stay locked so that no snapshot the policy keeps loses it.

    With one backup a day, a snapshot is kept at most ``keep_last`` or ``keep_daily`` days, a
    weekly one ``7 × keep_weekly`` days, a monthly one ``31 × keep_monthly`` days; one day more
    covers the time between a backup and its copy. ``configured`` can lengthen it, never
    shorten it.
    """
    span = max(
        policy.keep_last,
        policy.keep_daily,
        7 * policy.keep_weekly,
        31 * policy.keep_monthly,
    )
    return max(span + 1, configured or 0)


#: the part name of snapshots given as bare (id, time) pairs: one group, reasons unlabelled
WHOLE = ""


class PrunePlan(BaseModel):
    """What a prune would do; ``keep`` gives each kept snapshot's reasons."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    policy: RetentionPolicy
    keep: dict[str, list[str]] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Candidate(BaseModel):
    """One snapshot as retention sees it: when, which parts it holds complete, or unreadable."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    parts: frozenset[str] = frozenset({WHOLE})
    unreadable: str | None = Field(
        default=None, description="Why its manifest cannot be read; such a snapshot is kept."
    )


_Bucket = Callable[[datetime], tuple[int, ...]]
_RULES: tuple[tuple[str, str, _Bucket], ...] = (
    ("keep_daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("keep_monthly", "monthly", lambda t: (t.year, t.month)),
)


def plan_prune(
    snapshots: Iterable[Candidate | tuple[str, datetime]],
    policy: RetentionPolicy,
    protected: Iterable[str] = (),
) -> PrunePlan:
    """Split ``snapshots`` into kept (with reasons) and removed, newest first.

    A bare ``(id, created_at)`` pair is a snapshot of one whole part. Raises
    :class:`PolicyRefused` when every keep-* of ``policy`` is zero.
    """
    if not any((policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly)):
        raise PolicyRefused(
            "The retention policy keeps nothing (keep-last, keep-daily, keep-weekly and "
            "keep-monthly are all 0): it would delete every snapshot. Set at least one of them "
            "above 0. Nothing was deleted."
        )
    items = [
        s if isinstance(s, Candidate) else Candidate(id=s[0], created_at=s[1]) for s in snapshots
    ]
    # newest first; the id breaks ties so the plan never depends on input order
    ordered = sorted(items, key=lambda item: (_utc(item.created_at), item.id), reverse=True)
    guarded = set(protected)
    # reason label -> parts for which that rule keeps the snapshot, per snapshot
    why: dict[str, dict[str, list[str]]] = {item.id: {} for item in ordered}
    readable = [item for item in ordered if item.unreadable is None]
    for part in sorted({part for item in readable for part in item.parts}):
        copies = [item for item in readable if part in item.parts]
        for snapshot_id, label in _apply(copies, policy):
            why[snapshot_id].setdefault(label, []).append(part)
    keep: dict[str, list[str]] = {}
    for index, item in enumerate(ordered):
        reasons = ["newest snapshot"] if index == 0 else []
        if item.unreadable is not None:
            reasons.append("manifest unreadable")
        reasons += [_label(label, parts) for label, parts in why[item.id].items()]
        if item.id in guarded:
            reasons.append("protected")
        if reasons:
            keep[item.id] = reasons
    remove = [item.id for item in ordered if item.id not in keep]
    return PrunePlan(policy=policy, keep=keep, remove=remove)


def _apply(copies: list[Candidate], policy: RetentionPolicy) -> Iterable[tuple[str, str]]:
    """(id, rule label) for every rule that keeps one of ``copies`` (newest first)."""
    remaining = {attr: getattr(policy, attr) for attr, _, _ in _RULES}
    last_bucket: dict[str, tuple[int, ...] | None] = {attr: None for attr, _, _ in _RULES}
    for index, item in enumerate(copies):
        if index < policy.keep_last:
            yield item.id, f"last {policy.keep_last}"
        when = _utc(item.created_at)
        for attr, label, bucket in _RULES:
            value = bucket(when)
            if remaining[attr] > 0 and value != last_bucket[attr]:
                last_bucket[attr] = value
                remaining[attr] -= 1
                yield item.id, f"{label} {getattr(policy, attr)}"


def _label(label: str, parts: list[str]) -> str:
    named = [part for part in parts if part != WHOLE]
    return f"{label} ({', '.join(named)})" if named else label


def with_overrides(policy: RetentionPolicy, overrides: Mapping[str, int | None]) -> RetentionPolicy:
    """The effective policy: ``policy`` when no keep-* is given, else only the keep-* given.

    Flags replace the configured policy whole (a keep-* not given is 0): ``--keep-last 3``
    means "the newest 3", not "the newest 3 plus sbx.toml's daily, weekly and monthly rules".
    Validated like sbx.toml's (``model_copy(update=...)`` would not validate: a -1 from the
    command line went through and pruned). :class:`ConfigError` (exit 2) names the flag.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    base = policy.model_dump() if not given else dict.fromkeys(policy.model_dump(), 0)
    merged = base | given
    try:
        return RetentionPolicy.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "keep_*"
        flag = "--" + key.replace("_", "-")
        raise ConfigError(
            f"{flag} is {merged.get(key)!r}: {error['msg']}. Give {flag} a whole number of "
            "snapshots, 0 or more (0 turns that rule off). Nothing was deleted."
        ) from None


def describe_policy(policy: RetentionPolicy, *, from_flags: bool) -> str:
    """One line: the rules a prune applies, where they come from, and what is always kept."""
    rules = [
        f"{label} {count}"
        for label, count in (
            ("last", policy.keep_last),
            ("daily", policy.keep_daily),
            ("weekly", policy.keep_weekly),
            ("monthly", policy.keep_monthly),
        )
        if count
    ]
    source = (
        "from the command line; the configured [retention] is not used"
        if from_flags
        else "the configured [retention]; --keep-* flags would replace it"
    )
    return (
        f"policy: keep {', '.join(rules) or 'nothing'} ({source}); always kept: the newest "
        "snapshot, the newest complete copy of each part, the newest drill-passed snapshot"
    )


def _utc(moment: datetime) -> datetime:
    # naive timestamps are taken as UTC (manifests always carry a zone)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
