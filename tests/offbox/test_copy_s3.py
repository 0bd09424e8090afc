"""Off-box copies to moto over HTTP through a fault-injecting proxy: faults, a killed copy, and
the nightly backup-then-copy sending only the new manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed import S3Server
from bed.fault_proxy import FaultProxy
from helpers import SBX, cli_env

from offbox.conftest import Sbx
from offbox.keys import AgeKey

MiB = 1 << 20


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0, seed=4) as running:
        yield running


def _env(s3_server: S3Server, proxy: FaultProxy, key: AgeKey) -> dict[str, str]:
    return {
        **s3_server.env(),
        "AWS_ENDPOINT_URL": proxy.url,
        "SBX_AGE_RECIPIENTS": key.recipient,
        "SBX_AGE_IDENTITY_FILE": str(key.file),
    }


def _content_puts(proxy: FaultProxy, *, stored_only: bool) -> Counter[str]:
    """PUTs per object path, lock files left out; ``stored_only``: those the server answered
    200 (a write-once PUT of an existing key is refused with 412 and stores nothing)."""
    return Counter(
        r.path
        for r in list(proxy.requests)
        if r.method == "PUT"
        and "/locks/" not in r.path
        and (not stored_only or (r.reached_server and r.status == 200))
    )


def _backup(run_sbx: Sbx, stack: Path, repo: Path, env: dict[str, str]) -> None:
    done = run_sbx("backup", "--stack", str(stack), "--repo", str(repo), env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_copy_through_faults_completes_and_every_object_verifies(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, s3_server: S3Server, age_key: AgeKey
) -> None:
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/faulty"
    repo = tmp_path / "repo"
    (files_stack / "notes" / "big.bin").write_bytes(os.urandom(80 * MiB))
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.2, seed=20) as faulty:
        env = _env(s3_server, faulty, age_key)
        _backup(run_sbx, files_stack, repo, env)
        copied = run_sbx("copy", "--stack", str(files_stack), "--repo", str(repo), "--to", url,
                         env=env)  # fmt: skip
        assert copied.returncode == 0, copied.stderr[-3000:]
        verified = run_sbx("verify", "--stack", str(files_stack), "--repo", url, env=env)
        assert verified.returncode == 0, verified.stderr[-3000:]
        injected = faulty.faults_injected()
    # names are encrypted with a random key, so which requests fail varies from run to run
    assert len(injected) >= 2 and sum(injected.values()) >= 3, injected


def test_a_killed_copy_resumes_without_sending_a_finished_object_twice(
    run_sbx: Sbx,
    files_stack: Path,
    tmp_path: Path,
    s3_server: S3Server,
    proxy: FaultProxy,
    age_key: AgeKey,
    prefect_server: str,
) -> None:
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/killed"
    repo = tmp_path / "repo"
    for n in range(3):  # 8 MiB chunk objects: enough of them to kill the copy halfway
        (files_stack / "notes" / f"big-{n}.bin").write_bytes(os.urandom(64 * MiB))
    env = _env(s3_server, proxy, age_key)
    _backup(run_sbx, files_stack, repo, env)
    objects = sum(1 for _ in (repo / "objects").rglob("*") if _.is_file())

    args = ["copy", "--stack", str(files_stack), "--repo", str(repo), "--to", url]
    with subprocess.Popen(
        [*SBX, *args],
        env=cli_env(prefect_server, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as first:
        deadline = time.monotonic() + 240
        while len(_content_puts(proxy, stored_only=True)) < 4 and first.poll() is None:
            assert time.monotonic() < deadline, "the copy never started sending"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    time.sleep(1)  # PUTs in flight when the client died still reach moto: let them land
    finished = _content_puts(proxy, stored_only=True)
    assert 4 <= len(finished) < objects, f"killed too late: {len(finished)} of {objects} sent"
    assert not any("/snapshots/" in path for path in finished)

    proxy.reset()
    again = run_sbx(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    second = _content_puts(proxy, stored_only=False)
    assert not set(second) & set(finished), sorted(set(second) & set(finished))
    assert sum("/snapshots/" in path for path in second) == 1
    verified = run_sbx("verify", "--stack", str(files_stack), "--repo", url, env=env)
    assert verified.returncode == 0, verified.stderr[-3000:]


def test_nightly_backup_then_copy_sends_only_the_new_manifest_when_unchanged(
    files_stack: Path,
    tmp_path: Path,
    s3_server: S3Server,
    proxy: FaultProxy,
    age_key: AgeKey,
    prefect_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.backup import backup_stack

    bucket = s3_server.make_bucket()
    for name, value in _env(s3_server, proxy, age_key).items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}/nightly"
    monkeypatch.setenv("SBX_OFFBOX__URL", url)
    monkeypatch.setenv("SBX_OFFBOX__STORAGE_CLASS", "STANDARD_IA")  # passes through to S3
    repo = str(tmp_path / "repo")
    first = backup_stack(stack=str(files_stack), repo=repo, trigger="schedule", offbox=True)
    assert len(_content_puts(proxy, stored_only=True)) > 5
    proxy.reset()
    second = backup_stack(stack=str(files_stack), repo=repo, trigger="schedule", offbox=True)
    assert second.snapshot_id != first.snapshot_id
    puts = _content_puts(proxy, stored_only=False)
    assert list(puts.values()) == [1], puts
    assert "/snapshots/" in next(iter(puts))
    client = s3_server.client()
    stored = client.list_objects_v2(Bucket=bucket, Prefix="nightly/objects/")["Contents"]
    assert {item.get("StorageClass") for item in stored} == {"STANDARD_IA"}

    # remote prune, by the same policy engine: the older snapshot goes, nothing is rewritten
    from flows.prune import prune_repository
    from flows.verify import verify_repository

    proxy.reset()
    pruned = prune_repository(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, repo=url,
                              stack=str(files_stack))  # fmt: skip
    assert pruned.removed == [first.snapshot_id]
    assert _content_puts(proxy, stored_only=False) == Counter()  # deletes only (and the lock)
    assert verify_repository(snapshot=None, repo=url, stack=str(files_stack)).ok
