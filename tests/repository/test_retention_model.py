"""Model-based retention test (issue 18, deliverable 9): random sequences of full, partial and
failed-part backups, restore drills, damaged manifests and prunes with random policies, through
the engine (real snapshot writer, in-memory storage). After every prune, each part keeps at least
what the policy keeps of its own complete copies (computed here, independently, the restic way),
its newest complete copy, the newest snapshot, the newest drill-passed one and every damaged one
survive, and every object a readable snapshot uses is still stored.

Bounded to run in seconds; on a failure Hypothesis prints the shortest sequence and the seed
(``--hypothesis-seed`` reruns it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faults.figures import FIGURES
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import sbx.repository.writer as writer_module
from blocks.config import RetentionPolicy
from repository.helpers import CHUNK, PACK, SMALL
from sbx.errors import PolicyRefused
from sbx.repository import Repository, UnreadableSnapshot
from sbx.repository.drills import DrillMark, new_drill_id, write_mark
from sbx.repository.format import object_key, snapshot_key
from sbx.repository.storage.memory import MemoryStorage

PART_NAMES = ("configs", "models", "notes")
_Bucket = Callable[[datetime], tuple[int, ...]]
BUCKETS: dict[str, _Bucket] = {
    "keep_daily": lambda t: (t.year, t.month, t.day),
    "keep_weekly": lambda t: tuple(t.isocalendar())[:2],
    "keep_monthly": lambda t: (t.year, t.month),
}


class _Clock:
    """Stands in for ``datetime`` in the writer module: snapshot ids and times follow the model."""

    now_value = datetime(2026, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return cls.now_value


def policy_keeps(copies: list[tuple[str, datetime]], policy: RetentionPolicy) -> set[str]:
    """What ``policy`` keeps of one part's copies (newest first): restic's forget, written out
    plainly rather than through sbx.repository.retention."""
    kept = {snapshot_id for snapshot_id, _ in copies[: policy.keep_last]}
    for attr, bucket in BUCKETS.items():
        seen: list[tuple[int, ...]] = []
        for snapshot_id, when in copies:  # newest first: the first of a bucket is its newest
            if bucket(when) not in seen:
                seen.append(bucket(when))
                if len(seen) > getattr(policy, attr):
                    break
                kept.add(snapshot_id)
    return kept


class Retention(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # one history per instance: counted with the harness in the fault figures
        FIGURES.add("test_retention_model", harness_examples=1)
        self.saved_datetime = writer_module.datetime
        writer_module.datetime = _Clock  # type: ignore[misc]
        _Clock.now_value = datetime(2026, 1, 1, 3, tzinfo=UTC)
        self.repo = Repository.open_or_init(
            MemoryStorage(), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
        )
        # the model: id -> (time, parts held complete); damaged ids; ids with a passed drill
        self.snapshots: dict[str, tuple[datetime, frozenset[str]]] = {}
        self.damaged: set[str] = set()
        self.drilled: set[str] = set()
        self.round = 0

    def teardown(self) -> None:
        writer_module.datetime = self.saved_datetime  # type: ignore[misc]

    @initialize()
    def first_full_backup(self) -> None:
        self._backup(set(PART_NAMES), set())

    @rule(
        parts=st.sets(st.sampled_from(PART_NAMES), min_size=1),
        failed=st.sets(st.sampled_from(PART_NAMES)),
        hours=st.integers(1, 24 * 40),
    )
    def backup(self, parts: set[str], failed: set[str], hours: int) -> None:
        _Clock.now_value += timedelta(hours=hours)
        self._backup(parts, failed & parts)

    @precondition(lambda self: len(self.snapshots) > len(self.damaged))
    @rule(data=st.data())
    def damage_a_manifest(self, data: st.DataObject) -> None:
        readable = sorted(set(self.snapshots) - self.damaged)
        victim = data.draw(st.sampled_from(readable))
        raw = self.repo.storage.get(snapshot_key(victim))
        self.repo.storage.delete(snapshot_key(victim))
        # a fraction, not a length: a manifest's length varies from run to run (its timings)
        cut = len(raw) * data.draw(st.integers(0, 999)) // 1000
        self.repo.storage.put(snapshot_key(victim), raw[:cut])
        self.damaged.add(victim)

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data(), passed=st.booleans())
    def drill(self, data: st.DataObject, passed: bool) -> None:
        snapshot_id = data.draw(st.sampled_from(sorted(self.snapshots)))
        now = _Clock.now_value
        mark = DrillMark(
            drill_id=new_drill_id(now),
            snapshot_id=snapshot_id,
            passed=passed,
            started_at=now,
            finished_at=now,
        )
        write_mark(self.repo.storage, mark)
        if passed:
            self.drilled.add(snapshot_id)

    @rule(
        last=st.integers(0, 4),
        daily=st.integers(0, 4),
        weekly=st.integers(0, 3),
        monthly=st.integers(0, 3),
    )
    def prune(self, last: int, daily: int, weekly: int, monthly: int) -> None:
        policy = RetentionPolicy(
            keep_last=last, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly
        )
        before = set(self.snapshots)
        if not any((last, daily, weekly, monthly)):
            with pytest.raises(PolicyRefused):
                self.repo.prune(self.repo.plan_prune(policy))
            assert set(self.repo.list_snapshots()) == before
            return
        report = self.repo.prune(self.repo.plan_prune(policy))
        left = set(self.repo.list_snapshots())
        assert left == before - set(report.removed)
        must = set(self.damaged) | {max(before, key=lambda i: (self.snapshots[i][0], i))}
        drilled = before & self.drilled
        if drilled:
            must.add(max(drilled))
        for part in PART_NAMES:
            copies = sorted(
                ((i, t) for i, (t, held) in self.snapshots.items()
                 if part in held and i not in self.damaged),
                key=lambda item: (item[1], item[0]),
                reverse=True,
            )  # fmt: skip
            must |= policy_keeps(copies, policy)
            if copies:
                must.add(copies[0][0])  # the last complete copy of the part
        assert must <= left, f"pruned {sorted(must - left)} with {policy}"
        assert (report.gc.skipped is not None) == bool(self.damaged)
        if self.damaged:
            assert report.gc.objects_deleted == 0
        for gone in before - left:
            del self.snapshots[gone]

    @invariant()
    def every_readable_snapshot_has_its_objects(self) -> None:
        listed = self.repo.snapshot_summaries()
        assert [s.id for s in listed] == sorted(self.snapshots)
        assert {s.id for s in listed if isinstance(s, UnreadableSnapshot)} == self.damaged
        for snapshot_id in set(self.snapshots) - self.damaged:
            manifest = self.repo.load_snapshot(snapshot_id)
            held = {p.name for p in manifest.parts if p.status == "captured"}
            assert held == self.snapshots[snapshot_id][1]
            missing = [
                o for o in manifest.object_ids() if not self.repo.storage.exists(object_key(o))
            ]
            assert not missing, f"{snapshot_id} lost objects {missing[:3]}"

    def _backup(self, parts: set[str], failed: set[str]) -> None:
        self.round += 1
        base = self.repo.latest_snapshot()  # never blocked by a damaged newer manifest
        with self.repo.writer(command="model") as writer:
            snapshot_id = writer.begin_snapshot(previous=base)
            for name in sorted(parts):
                with writer.part(name, "copy") as part:
                    # one file that changes every round, one that never does (shared objects)
                    part.add_bytes(f"{name}/round", f"{name} {self.round}\n".encode() * 400)
                    part.add_bytes(f"{name}/same", name.encode() * 3 * CHUNK)
                    if name in failed:
                        part.fail("made to fail by the model")
            manifest = writer.commit()
        assert manifest.id == snapshot_id and manifest.created_at == _Clock.now_value
        self.snapshots[snapshot_id] = (_Clock.now_value, frozenset(parts - failed))


Retention.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None, print_blob=True
)
test_retention_model = Retention.TestCase
