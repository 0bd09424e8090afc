"""Done-when of issue #8 (drills): a drill on the running example stack passes and reports its
RTO without touching the live containers; a snapshot missing one object fails the drill, naming
object and part, and leaves nothing running."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bed import RunningStack, S3Server
from bed.qdrant_seed import seed_qdrant, snapshot_files
from drill_helpers import Sbx, drill_containers, live_containers

from flows.backup import backup_stack
from flows.drill import drill_restore
from sbx.errors import DrillFailed
from sbx.repository import Repository
from sbx.repository.drills import list_marks

if TYPE_CHECKING:
    from docker import DockerClient


def test_a_drill_passes_beside_the_live_stack_and_reports_its_rto(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    prefect_server: str,
    tmp_path: Path,
) -> None:
    stack = running_stack.path
    seed_qdrant(
        running_stack.url("qdrant"), {"docs": 120, "faq": 7}, running_stack.api_key("qdrant")
    )
    repo = str(tmp_path / "repo")
    snapshot = backup_stack(stack=str(stack), repo=repo).snapshot_id
    before = live_containers(docker_engine, running_stack.project)
    assert len(before) == 6  # worker, watchdog, qdrant, open-webui, proxy, internet-research

    report = drill_restore(stack=str(stack), repo=repo)

    assert report.passed and report.snapshot_id == snapshot
    assert report.rto_s is not None and report.rto_s > 0
    states = {c.id: c.state for c in report.checks}
    # the data checks ran against the restored copy, with the counts the backup recorded
    assert states["data:qdrant:docs"] == "ok" and states["data:qdrant:faq"] == "ok"
    assert states["data:open-webui:data/open-webui/webui.db"] == "ok"
    assert {k for k in states if k.startswith("data:models:")} == {
        "data:models:data/models/Qwen2.5-0.5B-Instruct",
        "data:models:data/models/Qwen2.5-7B-Instruct-AWQ",
    }
    # ... and the service checks against the scratch project's own ports
    for service in ("worker", "watchdog", "qdrant", "open-webui"):
        assert states[f"service:{service}"] == "ok", report.checks
        assert states[f"container:{service}"] == "ok", report.checks
    # the proxy (its keys and certificate restored from the configs part) and the agent run too
    for service in ("proxy", "internet-research"):
        assert states[f"container:{service}"] == "ok", report.checks
    # the live stack kept its containers (same ids, not restarted)
    assert live_containers(docker_engine, running_stack.project) == before
    # nothing of the drill is left: no containers, no scratch directory
    assert drill_containers(docker_engine) == []
    assert not any((stack / ".sbx" / "drills").glob("*"))
    assert snapshot_files(stack) == []  # nor any Qdrant snapshot on the live box
    # the snapshot is marked in the repository, with the RTO the report gave
    (mark,) = list_marks(Repository.open(repo).storage)
    assert mark.passed and mark.snapshot_id == snapshot and mark.rto_s == report.rto_s
    assert report.mark_key == f"drills/{snapshot}/{mark.drill_id}.json"


def test_a_missing_object_fails_the_drill_naming_it_and_leaves_nothing(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    run_sbx: Sbx,
    tmp_path: Path,
) -> None:
    stack = running_stack.path
    repo_dir = tmp_path / "repo"
    done = run_sbx("backup", "--stack", str(stack), "--repo", str(repo_dir))
    assert done.returncode == 0, done.stderr
    snapshot = done.stdout.strip().splitlines()[-1]
    repo = Repository.open(repo_dir)
    notes = next(p for p in repo.load_snapshot(snapshot).parts if p.name == "notes")
    victim = next(e for e in notes.entries if e.type == "file").extents[0].object
    (repo_dir / "objects" / victim[:2] / victim).unlink()
    before = live_containers(docker_engine, running_stack.project)

    done = run_sbx("drill", "--stack", str(stack), "--repo", str(repo_dir))

    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert victim in message and "part 'notes'" in message, message
    assert f"Drill of snapshot {snapshot} failed" in message
    assert drill_containers(docker_engine) == []
    assert not any((stack / ".sbx" / "drills").glob("*"))
    assert live_containers(docker_engine, running_stack.project) == before
    (mark,) = list_marks(repo.storage)
    assert not mark.passed and mark.rto_s is None
    assert any(victim in line for line in mark.failed)


def test_a_drill_from_the_offbox_repository(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    run_sbx: Sbx,
    s3_server: S3Server,
) -> None:
    stack = running_stack.path
    offbox = f"s3://{s3_server.make_bucket()}/box-1/repo"
    env = {**s3_server.env(), "SBX_OFFBOX__URL": offbox}
    # `sbx copy` (h-offbox) is not merged yet: the snapshot is written to S3 directly
    done = run_sbx("backup", "--stack", str(stack), "--repo", offbox, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    snapshot = done.stdout.strip().splitlines()[-1]

    done = run_sbx("drill", "--stack", str(stack), "--from-offbox", env=env)

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith(f"{snapshot} drill-passed RTO ")
    assert drill_containers(docker_engine) == []
    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket=offbox.split("/")[2])["Contents"]
    ]
    assert any(k.startswith(f"box-1/repo/drills/{snapshot}/") for k in keys)


def test_an_unhealthy_scratch_project_fails_the_drill_and_is_torn_down(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    prefect_server: str,
    tmp_path: Path,
) -> None:
    stack = running_stack.path
    seed_qdrant(running_stack.url("qdrant"), {"docs": 12}, running_stack.api_key("qdrant"))
    repo = str(tmp_path / "repo")
    backup_stack(stack=str(stack), repo=repo)
    before = live_containers(docker_engine, running_stack.project)
    # the restored worker serves its own model, never this one: its service check cannot pass
    (stack / "sbx.toml").write_text(
        # long enough for the scratch Qdrant to answer: the worker never will
        '[drill]\nhealth_timeout_s = 20\n[health.models]\nworker = "no-such-model"\n'
    )

    with pytest.raises(DrillFailed) as failed:
        drill_restore(stack=str(stack), repo=repo)

    report = failed.value.report
    assert not report.passed and report.rto_s is None
    assert "service:worker" in str(failed.value) and "no-such-model" in str(failed.value)
    assert report.phases.keys() >= {"restore", "start", "until healthy"}
    # Qdrant's points are counted all the same: an unhealthy worker does not skip them (#19)
    assert {c.id: c.state for c in report.checks}["data:qdrant:docs"] == "ok"
    assert drill_containers(docker_engine) == []
    assert not any((stack / ".sbx" / "drills").glob("*"))
    assert live_containers(docker_engine, running_stack.project) == before
