"""S3Storage and the engine through the fault proxy: dropped connections, 503 SlowDown and
truncated answers on ~20 % of requests must cost retries, never data; permanent refusals must
fail at once with a message that says what to do (and no secret)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bed import FaultProxy, S3Server

from blocks.config import OffboxConfig
from repository.helpers import CHUNK, PACK, PARTS, SMALL, backup, describe
from sbx.errors import CorruptObject, KeyExists, StorageError
from sbx.repository import Repository
from tasks.clients.s3.connect import S3Options
from tasks.clients.s3.storage import S3Storage, connect

MiB = 1 << 20
CANARY = "canary-secret-4f1e9b"


@pytest.fixture(autouse=True)
def aws_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any keys: a recognisable secret lets tests check it never shows up
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)


def through(proxy: FaultProxy, bucket: str, prefix: str, **offbox: object) -> S3Storage:
    config = OffboxConfig(endpoint_url=proxy.url, region="us-east-1", **offbox)  # type: ignore[arg-type]
    return connect(f"s3://{bucket}/{prefix}", config)


def test_200_objects_survive_20_percent_faults(
    s3_server: S3Server, fault_proxy: FaultProxy
) -> None:
    bucket = s3_server.make_bucket()
    storage = through(fault_proxy, bucket, "many", multipart_threshold_mib=6, part_size_mib=5)
    objects = {f"objects/{i:02x}/{i:04}": os.urandom(i * 37 % 20_000) for i in range(199)}
    big = os.urandom(13 * MiB + 5)

    def put(item: tuple[str, bytes]) -> None:
        storage.put(item[0], item[1])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, objects.items()))
    storage.put("objects/big", io.BytesIO(big))
    objects["objects/big"] = big

    with ThreadPoolExecutor(8) as pool:
        read = dict(zip(objects, pool.map(storage.get, objects), strict=True))
    assert read == objects
    with storage.open("objects/big") as stream:
        assert stream.read() == big
    assert sorted(storage.list("objects/")) == sorted(objects)

    faults = fault_proxy.faults_injected()
    assert set(faults) == {"drop", "slowdown", "truncate"}, faults
    assert sum(faults.values()) > 0.1 * fault_proxy.count()
    # a CreateMultipartUpload whose answer was lost leaves an upload nobody knows (S3 has no
    # idempotent create): only those are left, and purge_tmp aborts them
    leftover = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    lost = fault_proxy.count("POST", f"/{bucket}/many/objects/big", fault="truncate")
    assert len(leftover) <= lost
    assert storage.purge_tmp(0)[0] == len(leftover)
    assert s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_engine_through_faults(
    s3_server: S3Server, fault_proxy: FaultProxy, src: Path, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    storage = through(fault_proxy, bucket, "engine")
    repo = Repository.open_or_init(
        storage, chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )
    manifest = backup(repo, src)
    assert repo.verify(manifest.id).ok
    repo.restore(manifest.id, tmp_path / "restored")
    names = [path for paths in PARTS.values() for path in paths]
    assert describe(tmp_path / "restored", names) == describe(src, names)
    assert sum(fault_proxy.faults_injected().values()) > 0


def test_corrupted_bodies_are_caught_and_retried(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    plain = S3Server(endpoint_url=s3_server.endpoint_url)
    data, big = os.urandom(50_000), os.urandom(7 * MiB)
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0) as proxy:
        storage = through(proxy, bucket, "corrupt", multipart_threshold_mib=6, part_size_mib=5)
        storage.put("small", data)
        storage.put("big", io.BytesIO(big))
        proxy.fault_rate, proxy.faults, proxy.max_faults_in_a_row = 1.0, ("corrupt",), 2
        assert storage.get("small") == data  # SHA-256 caught two damaged answers
        assert storage.get("big") == big  # full-object CRC32 likewise
        proxy.max_faults_in_a_row = 99
        # damaged on every attempt: the object itself is damaged, and verify must report it
        # against the snapshots using it (CorruptObject), not abort on a retryable error
        with pytest.raises(CorruptObject) as damaged:
            storage.get("small")
        assert not damaged.value.retryable
        assert "small" in str(damaged.value) and "checksum S3 stored" in str(damaged.value)
        with pytest.raises(StorageError) as caught, storage.open("big") as stream:
            stream.read()
        assert caught.value.retryable and "damaged in transit" in str(caught.value)
    assert plain.client().get_object(Bucket=bucket, Key="corrupt/small")["Body"].read() == data


@pytest.mark.parametrize(
    ("status", "code", "retryable", "says"),
    [
        (403, "AccessDenied", False, "credentials_block"),
        (403, "InvalidAccessKeyId", False, "AWS_ACCESS_KEY_ID"),
        (404, "NoSuchBucket", False, "does not exist"),
        (503, "SlowDown", True, "run the command again"),
        (500, "InternalError", True, "run the command again"),
        (409, "ConditionalRequestConflict", True, "run the command again"),
        (400, "InvalidStorageClass", False, "storage_class"),
    ],
)
def test_refusals_are_translated(
    s3_server: S3Server, status: int, code: str, retryable: bool, says: str
) -> None:
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0) as proxy:
        proxy.forced_error = (status, code)
        offbox = OffboxConfig(endpoint_url=proxy.url, region="us-east-1")
        fast = connect("s3://some-bucket/refused", offbox, max_attempts=2)
        fast.options = S3Options(attempts=1)
        for call in (lambda: fast.put("objects/x", b"1"), lambda: fast.get("objects/x")):
            with pytest.raises(StorageError) as caught:
                call()
            message = str(caught.value)
            assert caught.value.retryable is retryable, message
            assert says in message and "s3://some-bucket/refused" in message
            assert CANARY not in message and CANARY not in repr(caught.value.__cause__)


def test_a_put_whose_answer_was_lost_is_not_an_overwrite(s3_server: S3Server) -> None:
    """The server stored the object, the answer never arrived: the retry meets its own object
    (412 to the conditional write), compares, and succeeds without a second copy."""
    bucket = s3_server.make_bucket()
    data, big = os.urandom(1000), os.urandom(11 * MiB)
    with FaultProxy(
        s3_server.endpoint_url, fault_rate=1.0, faults=("truncate",), max_faults_in_a_row=1
    ) as proxy:
        storage = through(proxy, bucket, "lost", multipart_threshold_mib=6, part_size_mib=5)
        storage.put("small", data)
        assert proxy.count("PUT", f"/{bucket}/lost/small", reached_server=True) == 2
        storage.put("big", io.BytesIO(big))
        proxy.fault_rate = 0.0
        assert storage.get("small") == data and storage.get("big") == big
        with pytest.raises(KeyExists):
            storage.put("small", b"other")
    versions = s3_server.client().list_object_versions(Bucket=bucket).get("Versions", [])
    assert sorted(v["Key"] for v in versions) == ["lost/big", "lost/small"]


def test_a_cut_off_stream_resumes_where_it_stopped(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    big = os.urandom(7 * MiB)
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0) as proxy:
        storage = through(proxy, bucket, "resume", multipart_threshold_mib=6, part_size_mib=5)
        storage.put("big", io.BytesIO(big))
        proxy.fault_rate, proxy.faults, proxy.max_faults_in_a_row = 1.0, ("truncate",), 2
        with storage.open("big") as stream:
            assert stream.read() == big  # cut at 1/2, then the rest cut at 1/2: 3 ranged reads
        assert proxy.count("GET", f"/{bucket}/resume/big") == 3
