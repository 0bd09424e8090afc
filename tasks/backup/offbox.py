"""Off-box copies: the age keys, opening the encrypted remote, and the copy itself.

The remote is ``s3://bucket/prefix`` (or, for a disk carried off the box, a directory); it holds
a repository with the local layout behind :class:`~sbx.repository.encrypted.EncryptedStorage`.
Keys: recipients from ``age_recipients`` (``SBX_AGE_RECIPIENTS``), the identity from
``age_identity_file`` (``SBX_AGE_IDENTITY_FILE``) or the ``age_identity`` field of the
``sbx-secrets`` block named by ``offbox.secrets_block``. Key material never reaches a log.
"""

from __future__ import annotations

import pyrage
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import AgeKeyError, ConfigError, RemoteMismatch
from sbx.repository import Repository
from sbx.repository.encrypted import (
    EncryptedStorage,
    parse_identities,
    parse_recipients,
    read_marker,
)
from sbx.repository.format import RepositoryInfo
from sbx.repository.locations import open_storage
from sbx.repository.replicate import CopyReport, replicate
from sbx.repository.storage import Storage
from tasks.retry import retry_if_transient


class AgeKeys:
    """Recipients to encrypt to and identities to decrypt with (either may be empty)."""

    def __init__(
        self,
        recipients: list[pyrage.x25519.Recipient],
        identities: list[pyrage.x25519.Identity],
    ) -> None:
        self.recipients = recipients
        self.identities = identities


def load_age_keys(config: SbxConfig) -> AgeKeys:
    """The configured age keys; :class:`AgeKeyError` (exit 2) when one is set but unusable."""
    recipients = parse_recipients(config.age_recipients)
    identities: list[pyrage.x25519.Identity] = []
    if config.age_identity_file is not None:
        path = config.age_identity_file.expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AgeKeyError(
                f"Cannot read the age identity file {path} ({exc.strerror}). Check "
                "SBX_AGE_IDENTITY_FILE (or age_identity_file in sbx.toml) and its permissions."
            ) from None
        identities = parse_identities(text, f"age identity file {path}")
    elif config.offbox.secrets_block:
        identities = _identities_from_block(config.offbox.secrets_block)
    return AgeKeys(recipients, identities)


def _identities_from_block(name: str) -> list[pyrage.x25519.Identity]:
    from blocks.box import SbxSecrets

    try:
        secrets = SbxSecrets.load(name)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"Cannot load the sbx-secrets block {name!r} ({type(exc).__name__}). Create it "
            "('sbx setup', then the Prefect UI) or fix offbox.secrets_block."
        ) from None
    if not isinstance(secrets, SbxSecrets) or secrets.age_identity is None:
        return []
    return parse_identities(secrets.age_identity.get_secret_value(), f"block {name!r}")


def remote_storage(config: SbxConfig, location: str) -> Storage:
    """The plain storage at ``location`` (S3 with the offbox options, or a directory)."""
    return open_storage(location, config)


def open_encrypted(config: SbxConfig, location: str, *, keys: AgeKeys | None = None) -> Storage:
    """The storage at ``location``, decrypted when its repository says it is encrypted."""
    inner = remote_storage(config, location)
    found = read_marker(inner)
    if found is None or found[1] is None:
        return inner  # not a repository (the caller says so) or a plaintext one
    keys = keys or load_age_keys(config)
    return EncryptedStorage.unlock(inner, recipients=keys.recipients, identities=keys.identities)


def check_copy_keys(config: SbxConfig, url: str) -> None:
    """Before a copy runs: recipients and identity are set, the identity is one of the
    recipients, and an existing encrypted remote opens with it (else :class:`AgeKeyError`)."""
    keys = load_age_keys(config)
    if not keys.recipients:
        raise AgeKeyError.no_recipients()
    if not keys.identities:
        raise AgeKeyError.missing(url)
    mine = {str(identity.to_public()) for identity in keys.identities}
    if not mine & {str(recipient) for recipient in keys.recipients}:
        raise AgeKeyError.not_a_recipient(url)
    open_encrypted(config, url, keys=keys)


@task(name="open-offbox", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_if_transient)
def open_offbox(config: SbxConfig, url: str, local: RepositoryInfo) -> EncryptedStorage:
    """Open the encrypted remote at ``url``, creating it when empty; it must be a copy of
    ``local`` (same repository id). Nothing is written unless the keys are usable."""
    keys = load_age_keys(config)
    if not keys.recipients:
        raise AgeKeyError.no_recipients()
    if not keys.identities:
        raise AgeKeyError.missing(url)
    inner = remote_storage(config, url)
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
    from tasks.reports import human_bytes

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
