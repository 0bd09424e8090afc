"""The repository engine end to end on S3 (moto over HTTP), opened through ``open_storage``:
init, backup, verify, restore byte-identical, prune and garbage collection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bed import S3Server

from blocks.config import RetentionPolicy, SbxConfig
from repository.helpers import CHUNK, PACK, PARTS, SMALL, backup, describe
from sbx.errors import NotARepository
from sbx.repository import PrunePlan, Repository
from sbx.repository.locations import open_storage
from tasks.clients.local_storage import LocalStorage
from tasks.clients.s3_storage import S3Storage

NAMES = [path for paths in PARTS.values() for path in paths]


def s3_config(server: S3Server) -> SbxConfig:
    return SbxConfig(offbox={"endpoint_url": server.endpoint_url, "region": server.region})


@pytest.fixture(autouse=True)
def aws_keys(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)


def test_open_storage_picks_the_backend(s3_server: S3Server, tmp_path: Path) -> None:
    assert isinstance(open_storage(tmp_path / "repo"), LocalStorage)
    assert isinstance(open_storage(str(tmp_path / "repo")), LocalStorage)
    storage = open_storage("s3://some-bucket/a/b", s3_config(s3_server))
    assert isinstance(storage, S3Storage) and storage.location == "s3://some-bucket/a/b"
    assert open_storage(storage) is storage


def test_open_storage_uses_aws_endpoint_url_without_config(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    storage = open_storage(f"s3://{bucket}/env")
    storage.put("x", b"1")
    assert s3_server.client().get_object(Bucket=bucket, Key="env/x")["Body"].read() == b"1"


def test_engine_round_trip_on_s3(s3_server: S3Server, src: Path, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    location = f"s3://{bucket}/box/repo"
    storage = open_storage(location, s3_config(s3_server))
    repo = Repository.open_or_init(
        storage, chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )
    (src / "data/changing.bin").write_bytes(os.urandom(100_000))
    first = backup(repo, src)
    (src / "data/changing.bin").write_bytes(os.urandom(100_001))
    second = backup(repo, src, previous=first)
    assert second.stats.new_objects < first.stats.new_objects  # unchanged files cost nothing

    again = Repository.open(open_storage(location, s3_config(s3_server)))
    assert again.list_snapshots() == [first.id, second.id]
    assert again.verify().ok
    again.restore("latest", tmp_path / "restored")
    assert describe(tmp_path / "restored", NAMES) == describe(src, NAMES)

    report = again.prune(_keep_last(again, second.id))
    assert report.removed == [first.id] and report.gc.objects_deleted >= 1
    assert again.list_snapshots() == [second.id]
    assert again.verify().ok
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(key.startswith("box/repo/") for key in keys)
    assert not any(key.startswith("box/repo/locks/") for key in keys)


def test_open_or_init_refuses_a_prefix_with_other_objects(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="used/photo.jpg", Body=b"x")
    with pytest.raises(NotARepository):
        Repository.open_or_init(open_storage(f"s3://{bucket}/used", s3_config(s3_server)))
    with pytest.raises(NotARepository):
        Repository.open(open_storage(f"s3://{bucket}/empty", s3_config(s3_server)))


def _keep_last(repo: Repository, newest: str) -> PrunePlan:
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    plan = repo.plan_prune(policy)
    assert list(plan.keep) == [newest]
    return plan
