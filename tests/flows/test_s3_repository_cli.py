"""The backup commands on an s3:// repository (moto over HTTP, the standard AWS_* variables):
backup, snapshots, verify and restore into a new directory, byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

from bed import S3Server
from conftest import Sbx
from helpers import describe_tree

PATHS = ["docker-compose.yml", "env", "data/models", "data/qdrant", "notes", "agents"]


def test_backup_verify_restore_on_s3(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.make_bucket()
    repo = f"s3://{bucket}/box-1/repo"
    env = s3_server.env()
    done = run_sbx("backup", "--stack", str(files_stack), "--repo", repo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    snapshot_id = done.stdout.strip().splitlines()[-1]

    listed = run_sbx("snapshots", "--repo", repo, "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert [row["id"] for row in json.loads(listed.stdout)] == [snapshot_id]

    verified = run_sbx("verify", "--all", "--stack", str(files_stack), "--repo", repo, env=env)
    assert verified.returncode == 0, verified.stderr[-3000:]

    target = tmp_path / "restored"
    restored = run_sbx(
        "restore", "latest", "--to", str(target), "--stack", str(files_stack), "--repo", repo,
        env=env,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr[-3000:]
    expected = describe_tree(files_stack, PATHS)
    assert len(expected) > 10 and "data/qdrant/storage/segment.bin" in expected
    assert describe_tree(target, PATHS) == expected
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(key.startswith("box-1/repo/") for key in keys)
