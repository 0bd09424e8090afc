"""S3 Object Lock on the off-box copy (moto, a bucket with ObjectLockEnabledForBucket): every
object is written locked for the retention policy's span, objects a new snapshot reuses are
locked again, the lock's own files stay unlocked, and prune leaves locked snapshots (saying so)
without even a delete marker, then removes them once their date has passed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bed import S3Server

from offbox.conftest import Sbx
from offbox.keys import AgeKey

#: the default [retention] (keep_monthly = 6): 31 × 6 + 1 days (retention.lock_days)
LOCK_DAYS = 187


def _ok(done: Any) -> None:
    assert done.returncode == 0, done.stderr[-3000:]


def _locks(client: Any, bucket: str) -> dict[str, datetime | None]:
    """Every current key of ``bucket`` -> its retain-until date (None: not locked)."""
    out: dict[str, datetime | None] = {}
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=item["Key"])
        mode = head.get("ObjectLockMode")
        assert mode in (None, "GOVERNANCE"), (item["Key"], mode)
        out[item["Key"]] = head.get("ObjectLockRetainUntilDate")
    return out


def _relock(client: Any, bucket: str, key: str, until: datetime) -> None:
    # moto lets anyone move a governance date (AWS would ask for the bypass permission)
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": until}
    client.put_object_retention(Bucket=bucket, Key=key, Retention=retention)


def test_locked_copy_is_extended_on_reuse_and_pruned_only_after_its_date(
    run_sbx: Sbx,
    files_stack: Path,
    tmp_path: Path,
    s3_server: S3Server,
    age_key: AgeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.backup import backup_stack

    client = s3_server.client()
    bucket = f"{s3_server.bucket_prefix}-locked"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    url = f"s3://{bucket}/box1"
    env = {
        **s3_server.env(),
        "SBX_AGE_RECIPIENTS": age_key.recipient,
        "SBX_AGE_IDENTITY_FILE": str(age_key.file),
        "SBX_OFFBOX__OBJECT_LOCK": "governance",
    }
    at, repo = ["--stack", str(files_stack)], str(tmp_path / "repo")
    for name, value in {**env, "SBX_OFFBOX__URL": url}.items():
        monkeypatch.setenv(name, value)

    def nightly() -> None:  # the scheduled backup, then the off-box copy, in this process
        backup_stack(stack=str(files_stack), repo=repo, trigger="schedule", offbox=True)

    nightly()
    first = _locks(client, bucket)
    floor = datetime.now(UTC) + timedelta(days=LOCK_DAYS)
    assert not [k for k in first if "/locks/" in k]  # released: the lock's files stay deletable
    short = {k: v for k, v in first.items() if v is None or v < floor - timedelta(minutes=5)}
    assert not short, short  # every object, manifest and the repository file is locked
    assert all(v and v < floor + timedelta(days=8) for v in first.values())

    # a week later, as it were: every lock ends tomorrow; the next night reuses every object
    tomorrow = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for key in first:
        _relock(client, bucket, key, tomorrow)
    nightly()
    second = _locks(client, bucket)
    old_manifest = next(k for k in first if "/snapshots/" in k)
    assert second[old_manifest] == tomorrow  # not reused by the new snapshot: left as it was
    reused = [k for k in first if k != old_manifest]
    assert all((second[k] or tomorrow) > floor - timedelta(minutes=5) for k in reused), second
    assert len([k for k in second if "/snapshots/" in k]) == 2

    # prune on the box: the older snapshot is locked until tomorrow, so it stays, said so,
    # and S3 saw no delete at all (a delete would leave a marker even on a locked object)
    done = run_sbx("prune", *at, "--repo", url, "--keep-last", "1", env=env)
    _ok(done)
    left = " ".join(done.stderr.split())
    assert "locked" in done.stdout and "left 1 snapshot(s)" in left, (done.stdout, left)
    assert _locks(client, bucket).keys() == second.keys()
    versions = client.list_object_versions(Bucket=bucket, Prefix="box1/snapshots/")
    assert not versions.get("DeleteMarkers")

    # once its date has passed (an administrator's prune, later), it goes
    _relock(client, bucket, old_manifest, datetime.now(UTC) + timedelta(seconds=2))
    time.sleep(2.5)
    done = run_sbx("prune", *at, "--repo", url, "--keep-last", "1", env=env)
    _ok(done)
    assert "removed" in done.stdout and "left" not in done.stderr
    assert old_manifest not in _locks(client, bucket)


def test_object_lock_on_a_bucket_without_it_says_what_to_fix(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.config import OffboxConfig
    from sbx.errors import StorageError
    from tasks.clients.s3.storage import connect

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    url = f"s3://{s3_server.make_bucket()}/box1"  # made without Object Lock
    storage = connect(url, OffboxConfig(object_lock="compliance"), lock_days=3)
    with pytest.raises(StorageError, match="object_lock needs a bucket made with Object Lock"):
        storage.put("objects/ab/cd", b"data")
    storage.put("locks/writer.json", b"{}")  # the lock's files are never locked: it works
