"""Off-box copies: opening (or creating) the encrypted remote, and the copy itself.

The remote is ``s3://bucket/prefix`` (or, for a disk carried off the box, a directory); it holds
a repository with the local layout behind :class:`~sbx.repository.encrypted.EncryptedStorage`.
The age keys are loaded where every repository is opened (``tasks/repository.py``).
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import AgeKeyError, RemoteMismatch
from sbx.repository import Repository
from sbx.repository.encrypted import EncryptedStorage, read_marker
from sbx.repository.format import RepositoryInfo
from sbx.repository.replicate import CopyReport, replicate
from sbx.repository.storage import Storage
from tasks.repository import load_age_keys, open_storage
from tasks.retry import retry_if_transient


@task(name="open-offbox", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient)
def open_offbox(config: SbxConfig, url: str, local: RepositoryInfo) -> EncryptedStorage:
    """Open the encrypted remote at ``url``, creating it when empty; it must be a copy of
    ``local`` (same repository id). Nothing is written unless the keys are usable."""
    keys = load_age_keys(config)
    if not keys.recipients:
        raise AgeKeyError.no_recipients()
    if not keys.identities:
        raise AgeKeyError.missing(url)
    inner = open_storage(url, config)
    found = read_marker(inner)
    if found is None:
        if next(iter(inner.list("")), None) is not None:
            raise RemoteMismatch(
                f"{url} holds objects but no sbx repository; refusing to copy into it. "
                "Use an empty bucket or prefix for --to (or offbox.url)."
            )
        get_run_logger().info("creating the encrypted repository %s", url)
        return EncryptedStorage.create(
            inner, local, recipients=keys.recipients, identities=keys.identities
        )
    info, marker = found
    if marker is None:
        raise RemoteMismatch(
            f"{url} holds an unencrypted sbx repository; off-box copies are encrypted. Use "
            "another bucket or prefix for --to (or offbox.url)."
        )
    if info.id != local.id:
        raise RemoteMismatch(
            f"{url} holds the copy of another repository (id {info.id}, this box's is "
            f"{local.id}). Use another prefix for --to (or offbox.url): one per repository."
        )
    return EncryptedStorage.unlock(inner, recipients=keys.recipients, identities=keys.identities)


@task(
    name="copy-repository",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_if_transient,
)
def copy_repository(local: Repository, remote: Storage, config: SbxConfig) -> CopyReport:
    """Send every object and manifest the remote lacks: content in parallel, manifests last."""
    log = get_run_logger()
    step = {"next": 0.0}

    def progress(done: int, total: int) -> None:
        if total and done / total >= step["next"]:
            log.info("sent %d of %d keys", done, total)
            step["next"] += 0.25

    report = replicate(
        local.storage,
        remote,
        lock_stale_after_s=config.repository.lock_stale_after_s,
        progress=progress,
    )
    log.info(
        "copied %d objects (%d bytes) and %d manifests to %s in %.1f s",
        report.objects_sent,
        report.bytes_sent,
        len(report.manifests_sent),
        report.target,
        report.duration_s,
    )
    return report


def copy_markdown(report: CopyReport) -> str:
    """The operator's summary of one copy (an artifact): what was sent where."""
    from tasks.units import human_bytes

    sent = ", ".join(report.manifests_sent) or "none (the remote had them all)"
    return "\n".join(
        [
            f"# Off-box copy to {report.target}",
            "",
            "| | |",
            "|---|---|",
            f"| objects sent | {report.objects_sent} |",
            f"| bytes sent | {human_bytes(report.bytes_sent)} |",
            f"| snapshots sent | {sent} |",
            f"| already off-box | {report.remote_keys_before} keys |",
            f"| removed locally meanwhile | {report.vanished} |",
            f"| duration | {report.duration_s:.1f} s ({report.mib_per_s:.1f} MiB/s) |",
        ]
    )
