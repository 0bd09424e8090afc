"""The storage contract against moto's S3 server over HTTP, plus what only S3 promises:
conditional (write-once) puts, multipart uploads, checksums, error translation, purge_tmp."""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from bed import S3Server

from blocks.config import OffboxConfig
from sbx.errors import ConfigError, KeyExists, ObjectMissing, StorageError
from sbx.repository.locations import parse_s3_url
from sbx.repository.storage import Storage
from sbx.repository.storage.contract import StorageContract
from tasks.clients.s3.connect import S3Options
from tasks.clients.s3.storage import S3Storage, connect

MiB = 1 << 20
_prefixes = itertools.count()


def s3_storage(server: S3Server, bucket: str, prefix: str = "repo", **offbox: object) -> S3Storage:
    """Storage at s3://bucket/prefix through ``connect`` (moto's endpoint, ``offbox`` options)."""
    config = OffboxConfig(endpoint_url=server.endpoint_url, region=server.region, **offbox)  # type: ignore[arg-type]
    return connect(f"s3://{bucket}/{prefix}", config)


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.make_bucket()


@pytest.fixture(autouse=True)
def aws_keys(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        if name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3_server: S3Server, bucket: str) -> Iterator[Storage]:
        backend = s3_storage(s3_server, bucket, f"contract-{next(_prefixes)}")
        backend.init()
        yield backend


def test_parse_url() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    for bad in ("s3://B", "s3://bucket/a//b", "s3://bucket/../x", "http://bucket"):
        with pytest.raises(ConfigError):
            parse_s3_url(bad)


def test_location_and_layout(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(s3_server, bucket, "layout/deep")
    assert storage.location == f"s3://{bucket}/layout/deep"
    storage.put("objects/ab/x", b"data")
    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="layout/")["Contents"]
    ]
    assert keys == ["layout/deep/objects/ab/x"]


def test_multipart_put_get_and_write_once(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(s3_server, bucket, "multipart", multipart_threshold_mib=6, part_size_mib=5)
    big = os.urandom(13 * MiB + 17)
    storage.put("objects/big", io.BytesIO(big))
    head = s3_server.client().head_object(
        Bucket=bucket, Key="multipart/objects/big", ChecksumMode="ENABLED"
    )
    assert head["ChecksumCRC32"] and head.get("ChecksumType") == "FULL_OBJECT"
    assert storage.get("objects/big") == big
    with storage.open("objects/big") as stream:
        assert stream.read() == big
    storage.put("objects/big", io.BytesIO(big))  # same content: no-op
    with pytest.raises(KeyExists):
        storage.put("objects/big", io.BytesIO(big[:-1] + b"x"))
    assert storage.get("objects/big") == big
    assert (
        s3_server.client()
        .list_multipart_uploads(Bucket=bucket, Prefix="multipart/")
        .get("Uploads", [])
        == []
    )


def test_purge_tmp_aborts_stale_multipart_uploads(s3_server: S3Server, bucket: str) -> None:
    """In-flight multipart uploads are S3's tmp/: never listed, aborted by purge_tmp."""
    storage = s3_storage(s3_server, bucket, "purge")
    client = s3_server.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="purge/objects/left")
    client.upload_part(
        Bucket=bucket,
        Key="purge/objects/left",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"x" * 1000,
    )
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/objects/left")
    assert list(storage.list("")) == []
    # (moto reports every upload as initiated in 2010, so the age cutoff itself is not
    # exercised here: any older_than_s counts them as stale)
    assert storage.purge_tmp(0, dry_run=True) == (1, 1000)
    assert storage.purge_tmp(0) == (1, 1000)
    assert storage.purge_tmp(0) == (0, 0)
    others = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in others] == ["elsewhere/objects/left"]


def test_missing_bucket_is_permanent_and_says_what_to_do(s3_server: S3Server) -> None:
    storage = s3_storage(s3_server, "sbx-no-such-bucket")
    for call in (storage.init, lambda: storage.put("a", b"1"), lambda: list(storage.list(""))):
        with pytest.raises(StorageError) as caught:
            call()
        assert not caught.value.retryable
        assert "sbx-no-such-bucket" in str(caught.value) and "does not exist" in str(caught.value)


def test_storage_class_and_sse_are_passed(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(
        s3_server, bucket, "sse", storage_class="STANDARD_IA", server_side_encryption="AES256"
    )
    storage.put("a", b"1")
    head = s3_server.client().head_object(Bucket=bucket, Key="sse/a")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"


def test_unreachable_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    from bed import free_port

    offbox = OffboxConfig(endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")
    storage = connect("s3://bucket/x", offbox, max_attempts=1)
    storage.options = S3Options(attempts=1)
    with pytest.raises(StorageError) as caught:
        storage.get("a")
    assert caught.value.retryable
    assert "endpoint" in str(caught.value)


class _FailsAfter(io.RawIOBase):
    """A stream that yields ``good`` bytes, then fails like a dying disk."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise OSError(5, "injected read error")
        n = min(len(buffer), self.left)
        buffer[:n] = b"z" * n
        self.left -= n
        return n


def test_failed_multipart_upload_is_aborted(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(s3_server, bucket, "abort", multipart_threshold_mib=6, part_size_mib=5)
    with pytest.raises(OSError, match="injected"):
        storage.put("objects/big", _FailsAfter(12 * MiB))
    assert not storage.exists("objects/big")
    uploads = s3_server.client().list_multipart_uploads(Bucket=bucket, Prefix="abort/")
    assert uploads.get("Uploads", []) == []


def test_credentials_from_an_aws_credentials_block(
    s3_server: S3Server, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_aws import AwsClientParameters, AwsCredentials

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    AwsCredentials(
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
        region_name=s3_server.region,
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_server.endpoint_url),
    ).save("sbx-test-offbox", overwrite=True)
    bucket = s3_server.make_bucket()
    storage = connect(f"s3://{bucket}/blk", OffboxConfig(credentials_block="sbx-test-offbox"))
    storage.put("x", b"from the block")
    assert storage.get("x") == b"from the block"
    with pytest.raises(ConfigError, match="no-such-block"):
        connect(f"s3://{bucket}/blk", OffboxConfig(credentials_block="no-such-block"))


def test_concurrent_renames_of_one_key_have_one_winner(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(s3_server, bucket, "rename-race")
    for round_ in range(5):
        storage.put("locks/writer.json", f"holder {round_}".encode())

        def take(n: int, round_: int = round_) -> str:
            try:
                storage.rename("locks/writer.json", f"locks/stale-{round_}-{n}.json")
            except ObjectMissing:
                return "missing"
            return "moved"

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(take, range(6)))
        assert sorted(outcomes) == ["missing"] * 5 + ["moved"]
        assert not storage.exists("locks/writer.json")
        aside = [key for key in storage.list("locks/") if key.startswith(f"locks/stale-{round_}-")]
        assert len(aside) == 1 and storage.get(aside[0]) == f"holder {round_}".encode()


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self.inner.readinto(memoryview(buffer)[: 3 * MiB // 2])  # short, as a pipe


def test_large_unseekable_stream_goes_up_in_parts(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(s3_server, bucket, "pipe", multipart_threshold_mib=6, part_size_mib=5)
    data = os.urandom(16 * MiB + 3)
    storage.put("objects/piped", _Unseekable(data))  # type: ignore[arg-type]
    head = s3_server.client().head_object(Bucket=bucket, Key="pipe/objects/piped", PartNumber=1)
    assert head["PartsCount"] == 4 and head["ContentLength"] == 5 * MiB
    assert storage.get("objects/piped") == data
    small = os.urandom(5 * MiB)
    storage.put("objects/small", _Unseekable(small))  # type: ignore[arg-type]
    assert "PartsCount" not in s3_server.client().head_object(
        Bucket=bucket, Key="pipe/objects/small", PartNumber=1
    )
    assert storage.get("objects/small") == small


def test_no_credentials_is_permanent_and_names_the_settings(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage = s3_storage(s3_server, bucket, "nocreds")
    with pytest.raises(StorageError) as caught:
        storage.put("a", b"1")
    assert not caught.value.retryable
    assert "no usable S3 credentials" in str(caught.value)
    assert "offbox.credentials_block" in str(caught.value)
