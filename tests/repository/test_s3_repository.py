"""The repository engine end to end on S3 (moto over HTTP), opened through ``open_storage``:
init, backup, verify, restore byte-identical, prune and garbage collection."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from bed import S3Server

from blocks.config import RetentionPolicy, SbxConfig
from repository.helpers import CHUNK, PACK, PARTS, SMALL, backup, describe
from sbx.errors import NotARepository, RepositoryLocked
from sbx.repository import PrunePlan, Repository
from sbx.repository.format import LOCK_KEY
from sbx.repository.lock import WriterLock
from sbx.repository.storage.local import LocalStorage
from tasks.clients.s3.storage import S3Storage
from tasks.repository import open_storage

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


def test_writer_lock_on_s3(s3_server: S3Server) -> None:
    """Exclusive create, heartbeat (replace) and the take-over of a silent holder (rename)."""
    bucket = s3_server.make_bucket()
    storage = open_storage(f"s3://{bucket}/locked", s3_config(s3_server))
    with WriterLock(storage, command="first", stale_after_s=2):
        time.sleep(3)  # past stale time: only the heartbeat keeps it
        with pytest.raises(RepositoryLocked, match="first"):
            WriterLock(storage, command="second", stale_after_s=2).acquire(wait_s=0)
    assert list(storage.list("locks/")) == []
    silent = WriterLock(storage, command="silent", stale_after_s=600)
    silent.acquire()
    silent._stop.set()  # it stops heartbeating, as a hung process would
    assert silent._thread is not None
    silent._thread.join()
    raw = storage.get(LOCK_KEY).replace(socket.gethostname().encode(), b"elsewhere")
    storage.replace(LOCK_KEY, raw)
    time.sleep(0.6)
    with WriterLock(storage, command="taker", stale_after_s=0.5) as taker:
        assert taker.held  # the silent holder's heartbeat was too old
    assert list(storage.list("locks/")) == []
