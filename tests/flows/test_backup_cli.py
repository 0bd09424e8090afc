"""The backup commands as an operator types them: ids, damage, refusals, locks, prune."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import Sbx

from sbx.repository import Repository


def backup(run_sbx: Sbx, stack: Path, repo: Path) -> str:
    done = run_sbx("backup", "--stack", str(stack), "--repo", str(repo))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_backup_prints_the_id_last_and_snapshots_lists_it(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    snapshot_id = backup(run_sbx, files_stack, repo)
    listed = run_sbx("snapshots", "--repo", str(repo), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == [snapshot_id]
    assert "models" in rows[0]["parts"] and rows[0]["failed_parts"] == []
    # without containers the qdrant part is copied as it is, and the report says how
    manifest = Repository.open(repo).load_snapshot(snapshot_id)
    assert manifest.part("qdrant") is not None
    assert manifest.part("qdrant").detail["mode"] == "copy"  # type: ignore[union-attr]


def test_a_flipped_byte_is_found_and_restore_refuses(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    snapshot_id = backup(run_sbx, files_stack, repo)
    manifest = Repository.open(repo).load_snapshot(snapshot_id)
    models = manifest.part("models")
    assert models is not None
    victim = next(e for e in models.entries if e.path.endswith("7B-Instruct-AWQ/model.safetensors"))
    object_id = victim.extents[0].object
    object_file = repo / "objects" / object_id[:2] / object_id
    data = bytearray(object_file.read_bytes())
    data[-1] ^= 0x01
    object_file.chmod(0o644)
    object_file.write_bytes(bytes(data))

    verify = run_sbx("verify", "--repo", str(repo))
    assert verify.returncode == 1
    assert f"DAMAGED snapshot {snapshot_id}, part models, {victim.path}:" in verify.stdout
    assert "Verification found" in verify.stderr

    target = tmp_path / "restored"
    restore = run_sbx("restore", "latest", "--to", str(target), "--repo", str(repo))
    assert restore.returncode != 0
    assert victim.path in restore.stderr or object_id[:12] in restore.stderr
    assert not target.exists()  # nothing written before every byte was verified
    assert not list(tmp_path.glob("restored*"))


def test_refusals_are_clear_and_touch_nothing(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, prefect_server: str
) -> None:
    repo = tmp_path / "repo"
    backup(run_sbx, files_stack, repo)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    done = run_sbx("restore", "latest", "--to", str(busy), "--repo", str(repo))
    assert done.returncode != 0 and "--force" in done.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    not_repo = tmp_path / "stuff"
    not_repo.mkdir()
    (not_repo / "a.txt").write_text("x")
    done = run_sbx("snapshots", "--repo", str(not_repo))
    assert done.returncode != 0 and "is not an sbx repository" in done.stderr

    # a crafted snapshot whose entry climbs out of the target
    manifest_file = next((repo / "snapshots").glob("*.json"))
    raw = json.loads(manifest_file.read_text())
    raw["id"] = raw["id"][:-8] + "ffffffff"
    notes = next(p for p in raw["parts"] if p["name"] == "notes")
    file_entry = next(e for e in notes["entries"] if e["type"] == "file")
    file_entry["path"] = "../escaped.md"
    (repo / "snapshots" / f"{raw['id']}.json").write_text(json.dumps(raw))
    target = tmp_path / "out" / "restored"
    done = run_sbx("restore", raw["id"], "--to", str(target), "--repo", str(repo))
    assert done.returncode != 0 and "../escaped.md" in done.stderr
    assert not (tmp_path / "out" / "escaped.md").exists() and not target.exists()
    # the operator reads the reason, not Prefect's traceback of it; the run's log keeps that
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("error: ")
    assert "Traceback" in failure_log(prefect_server, done.stderr)


def failure_log(api: str, stderr: str) -> str:
    """The ERROR lines the Prefect UI shows for the flow run whose link ``stderr`` printed."""
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", stderr)
    assert run_id, stderr
    query = {"logs": {"flow_run_id": {"any_": [run_id[1]]}, "level": {"ge_": logging.ERROR}}}
    # the run's logs are sent in batches; they are in once the command has exited, or soon after
    for _ in range(50):
        logs = httpx.post(f"{api}/logs/filter", json=query, timeout=10).json()
        if logs:
            return "\n".join(log["message"] for log in logs)
        time.sleep(0.2)
    raise AssertionError(f"no ERROR log reached the API for flow run {run_id[1]}")


def test_one_writer_at_a_time_and_dead_locks_are_taken_over(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    backup(run_sbx, files_stack, repo)
    with Repository.open(repo).lock(command="a backup that takes long"):
        done = run_sbx("backup", "--stack", str(files_stack), "--repo", str(repo))
    assert done.returncode != 0
    assert "locked by" in done.stderr and "a backup that takes long" in done.stderr

    # a writer killed with SIGKILL leaves its lock behind: the next backup takes it over
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from sbx.repository import Repository; "
                f"lock = Repository.open({str(repo)!r}).lock(command='killed'); lock.acquire(); "
                "print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    backup(run_sbx, files_stack, repo)
    assert len(Repository.open(repo).list_snapshots()) == 2


def test_prune_keeps_the_policy_and_refuses_to_empty_the_repository(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    ids = [backup(run_sbx, files_stack, repo) for _ in range(3)]
    (files_stack / "notes" / "new.md").write_text("only in the newest snapshot\n")
    ids.append(backup(run_sbx, files_stack, repo))
    policy = ["--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"]

    dry = run_sbx("prune", *policy, "--dry-run", "--repo", str(repo))
    assert dry.returncode == 0, dry.stderr
    assert all(f"would remove {i}" in dry.stdout for i in ids[:3])
    assert Repository.open(repo).list_snapshots() == ids

    done = run_sbx("prune", *policy, "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert Repository.open(repo).list_snapshots() == [ids[-1]]
    assert run_sbx("verify", "--all", "--repo", str(repo)).returncode == 0

    nothing = ["--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"]
    refused = run_sbx("prune", *nothing, "--repo", str(repo))
    assert refused.returncode != 0 and "every snapshot" in refused.stderr
    assert Repository.open(repo).list_snapshots() == [ids[-1]]
