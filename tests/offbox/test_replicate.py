"""The copy engine over the storage protocol: local repository -> encrypted memory remote."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest
from repository.helpers import PARTS, backup, describe

from sbx.errors import CopyIncomplete, StorageError
from sbx.repository import Repository
from sbx.repository.encrypted import EncryptedStorage
from sbx.repository.format import SNAPSHOTS_PREFIX, snapshot_key
from sbx.repository.replicate import replicate
from sbx.repository.storage.memory import MemoryStorage


class CountingStorage(MemoryStorage):
    """Counts puts per key; ``fail_keys`` makes puts of some keys fail (retryable) N times."""

    def __init__(self) -> None:
        super().__init__("memory://remote")
        self.put_counts: dict[str, int] = {}
        self.fail_prefix: str | None = None
        self.failures_left = 0

    def put(self, key: str, data: object) -> None:  # type: ignore[override]
        self.put_counts[key] = self.put_counts.get(key, 0) + 1
        if (
            self.fail_prefix is not None
            and key.startswith(self.fail_prefix)
            and self.failures_left > 0
        ):
            self.failures_left -= 1
            raise StorageError(f"injected 503 storing {key}", key=key, retryable=True)
        super().put(key, data)  # type: ignore[arg-type]


def _remote(repo: Repository) -> tuple[CountingStorage, EncryptedStorage, pyrage.x25519.Identity]:
    identity = pyrage.x25519.Identity.generate()
    inner = CountingStorage()
    remote = EncryptedStorage.create(
        inner, repo.info, recipients=[identity.to_public()], identities=[identity]
    )
    return inner, remote, identity


def _content_puts(inner: CountingStorage) -> dict[str, int]:
    return {k: n for k, n in inner.put_counts.items() if not k.startswith("locks/")}


def test_copy_then_restore_from_the_remote_is_byte_identical(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    manifest = backup(repo, src)
    inner, remote, _ = _remote(repo)
    report = replicate(repo.storage, remote, workers=4)
    assert report.manifests_sent == [manifest.id]
    assert report.objects_sent == len(list(repo.storage.list("objects/")))
    assert all(n == 1 for n in _content_puts(inner).values())
    assert not any(k.startswith("locks/") for k in inner.objects)  # lock released, never copied

    from_remote = Repository.open(remote)
    assert from_remote.list_snapshots() == [manifest.id]
    assert from_remote.verify(None).ok
    from_remote.restore("latest", tmp_path / "out")
    assert describe(tmp_path / "out", list(PARTS)) == describe(src, list(PARTS))


def test_second_copy_sends_nothing_and_an_unchanged_backup_only_its_manifest(
    repo: Repository, src: Path
) -> None:
    first = backup(repo, src)
    inner, remote, _ = _remote(repo)
    replicate(repo.storage, remote)
    before = _content_puts(inner)
    again = replicate(repo.storage, remote)
    assert again.objects_sent == 0 and again.manifests_sent == []
    assert _content_puts(inner) == before

    second = backup(repo, src, previous=first)
    third = replicate(repo.storage, remote)
    assert third.objects_sent == 0 and third.manifests_sent == [second.id]
    new_puts = {k for k, n in _content_puts(inner).items() if before.get(k) != n}
    assert new_puts == {remote.remote_key(snapshot_key(second.id))}


def test_transient_failures_are_retried_per_object(repo: Repository, src: Path) -> None:
    backup(repo, src)
    inner, remote, _ = _remote(repo)
    inner.fail_prefix, inner.failures_left = "objects/", 3
    report = replicate(repo.storage, remote, retry_delay_s=0.001)
    assert inner.failures_left == 0
    assert Repository.open(remote).verify(None).ok
    assert report.manifests_sent


def test_a_failed_copy_raises_sends_no_manifest_and_resumes(repo: Repository, src: Path) -> None:
    manifest = backup(repo, src)
    inner, remote, _ = _remote(repo)
    inner.fail_prefix, inner.failures_left = "objects/", 10_000
    with pytest.raises(CopyIncomplete, match="sbx copy' again") as failed:
        replicate(repo.storage, remote, retry_delay_s=0.001)
    assert failed.value.retryable
    assert not any(k.startswith(SNAPSHOTS_PREFIX) for k in inner.objects)

    inner.fail_prefix = None
    stored_before = {k for k in inner.objects if k.startswith("objects/")}
    counts_before = dict(inner.put_counts)
    report = replicate(repo.storage, remote)
    assert report.manifests_sent == [manifest.id]
    for key in stored_before:  # nothing that made it the first time is sent again
        assert inner.put_counts[key] == counts_before[key]


def test_a_manifest_whose_objects_are_missing_locally_is_not_sent(
    repo: Repository, src: Path
) -> None:
    manifest = backup(repo, src)
    victim = next(iter(repo.storage.list("objects/")))
    repo.storage.delete(victim)
    _, remote, _ = _remote(repo)
    with pytest.raises(CopyIncomplete, match="verify --all"):
        replicate(repo.storage, remote)
    assert manifest.id not in Repository.open(remote).list_snapshots()


def test_remote_prune_keeps_what_kept_snapshots_reference(
    repo: Repository, src: Path, tmp_path: Path
) -> None:
    from blocks.config import RetentionPolicy

    first = backup(repo, src)
    (src / "notes").mkdir(exist_ok=True)
    (src / "notes" / "new.md").write_text("a later note\n" * 3000)
    second = backup(repo, src, previous=first)
    _, remote, _ = _remote(repo)
    replicate(repo.storage, remote)
    from_remote = Repository.open(remote)
    plan = from_remote.plan_prune(RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0,
                                                   keep_monthly=0))  # fmt: skip
    report = from_remote.prune(plan)
    assert report.removed == [first.id]
    assert from_remote.list_snapshots() == [second.id]
    assert from_remote.verify(None).ok
    from_remote.restore("latest", tmp_path / "out")
    assert describe(tmp_path / "out", list(PARTS)) == describe(src, list(PARTS))
