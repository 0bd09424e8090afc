"""Drill marks in the repository, the prune rule they feed, and the parts of a drill that need no
Docker: the compose override, the report's RTO trend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from drill_helpers import Sbx, small_snapshot

from blocks.config import SbxConfig
from sbx.errors import ConfigError, KeyExists
from sbx.repository import Repository
from sbx.repository.drills import (
    DrillMark,
    list_marks,
    mark_key,
    new_drill_id,
    newest_drill_passed,
    write_mark,
)
from tasks.drill.project import override_yaml, plan_scratch
from tasks.drill.report import trend_table

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def _mark(snapshot_id: str, passed: bool, *, days: int = 0, rto: float | None = 30.0) -> DrillMark:
    started = T0 + timedelta(days=days)
    return DrillMark(
        drill_id=new_drill_id(started),
        snapshot_id=snapshot_id,
        passed=passed,
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        rto_s=rto if passed else None,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.open_or_init(tmp_path / "repo")


def test_marks_are_written_once_and_read_back_in_drill_order(repo: Repository) -> None:
    later, earlier = (
        _mark("20261120T020000Z-00000abc", True, days=7),
        _mark("20261120T020000Z-00000abc", False, days=0),
    )
    key = write_mark(repo.storage, later)
    write_mark(repo.storage, earlier)
    assert key == mark_key(later.snapshot_id, later.drill_id)
    assert [m.drill_id for m in list_marks(repo.storage)] == [earlier.drill_id, later.drill_id]
    write_mark(repo.storage, later)  # the same mark again: a no-op
    with pytest.raises(KeyExists):  # a mark is never overwritten with something else
        write_mark(repo.storage, later.model_copy(update={"passed": False}))


def test_prune_protects_the_newest_drill_passed_snapshot_that_exists(
    repo: Repository, tmp_path: Path
) -> None:
    ids = [small_snapshot(repo, tmp_path / "src", f"note {n}\n").id for n in range(4)]
    assert newest_drill_passed(repo.storage, ids) is None
    write_mark(repo.storage, _mark(ids[0], True))
    write_mark(repo.storage, _mark(ids[1], True))
    write_mark(repo.storage, _mark(ids[2], False))  # a failed drill protects nothing
    assert newest_drill_passed(repo.storage, ids) == ids[1]
    # marks of pruned snapshots stay (the trend) but protect nothing
    assert newest_drill_passed(repo.storage, [ids[0], ids[2], ids[3]]) == ids[0]


def test_a_mark_of_a_newer_schema_still_protects_and_junk_is_ignored(
    repo: Repository, tmp_path: Path
) -> None:
    (snap,) = [small_snapshot(repo, tmp_path / "src", "n\n").id]
    newer = {"schema_version": 2, "snapshot_id": snap, "passed": True, "what": "new fields"}
    repo.storage.put(f"drills/{snap}/20991231T000000Z-ffffff.json", json.dumps(newer).encode())
    repo.storage.put(f"drills/{snap}/broken.json", b"{not json")
    repo.storage.put("drills/not-a-snapshot/x.json", b'{"passed": true}')
    assert newest_drill_passed(repo.storage, [snap]) == snap
    assert list_marks(repo.storage) == []  # none of this sbx's schema to draw a trend from


def test_prune_keeps_the_newest_drill_passed_snapshot_the_policy_would_drop(
    repo: Repository, tmp_path: Path, run_sbx: Sbx
) -> None:
    ids = [small_snapshot(repo, tmp_path / "src", f"note {n}\n").id for n in range(3)]
    write_mark(repo.storage, _mark(ids[0], True))
    write_mark(repo.storage, _mark(ids[1], False))
    policy = ["--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"]
    common = ["--repo", repo.location, "--stack", str(tmp_path / "stack")]

    done = run_sbx("prune", *policy, *common)

    assert done.returncode == 0, done.stderr
    assert f"removed {ids[1]}" in done.stdout
    assert f"keep   {ids[0]}  (protected)" in done.stdout, done.stdout
    assert repo.list_snapshots() == [ids[0], ids[2]]
    assert len(list_marks(repo.storage)) == 2  # the drill history survives the prune


def test_the_override_moves_every_port_to_a_free_loopback_one_and_drops_fixed_names() -> None:
    resolved = {
        "services": {
            "worker": {"ports": [{"target": 8000, "published": "8000", "protocol": "tcp"}]},
            "proxy": {
                "container_name": "edge",
                "ports": [{"target": 443, "published": "443"}, {"target": 53, "protocol": "udp"}],
            },
            "agent": {},
        }
    }
    text = override_yaml(resolved, "20261122T050000Z-abcdef")
    assert '"worker":\n    ports: !override\n      - "127.0.0.1::8000/tcp"\n' in text
    assert '- "127.0.0.1::443/tcp"\n      - "127.0.0.1::53/udp"\n' in text
    assert "container_name: !reset null" in text.split('"worker"')[0]  # proxy sorts first
    assert text.count('sbx.drill: "20261122T050000Z-abcdef"') == 3


def test_scratch_goes_under_the_stack_unless_configured(tmp_path: Path) -> None:
    config = SbxConfig(stack_dir=tmp_path / "stack")
    scratch = plan_scratch(config, "20261122T050000Z-abcdef")
    assert scratch.stack_dir == tmp_path / "stack" / ".sbx" / "drills" / scratch.drill_id / "stack"
    assert scratch.project == "sbx-drill-20261122t050000z-abcdef"
    moved = SbxConfig(stack_dir=tmp_path / "stack", drill={"scratch_dir": str(tmp_path / "big")})
    assert plan_scratch(moved, "x").root == tmp_path / "big" / "x"


def test_the_trend_lists_recent_drills_with_their_rto() -> None:
    marks = [_mark("20261120T020000Z-00000abc", True, days=d, rto=20.0 + d) for d in range(3)]
    marks.append(_mark("20261120T020000Z-00000abc", False, days=3))
    rows = trend_table(marks)
    assert rows[2].endswith("| passed | 20.0 | " + "█" * 18 + " |")
    assert "| failed | - |" in rows[5]
    assert rows[-1] == "RTO over these drills: min 20.0 s, max 22.0 s."
    assert trend_table([]) == ["(no drills recorded yet)"]


def test_from_offbox_needs_an_offbox_url(tmp_path: Path) -> None:
    from flows.drill import _location

    with pytest.raises(ConfigError, match=r"\[offbox\] url"):
        _location(SbxConfig(stack_dir=tmp_path), None, True)
    config = SbxConfig(stack_dir=tmp_path, offbox={"url": "s3://bucket/box"})
    assert _location(config, None, True) == "s3://bucket/box"
    assert _location(config, "/srv/repo", False) == "/srv/repo"
