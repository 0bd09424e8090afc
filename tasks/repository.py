"""Opening a repository: the one place that turns a location into a :class:`Repository`.

A location is a directory or ``s3://bucket/prefix`` (:class:`RepositoryLocation`). S3 endpoint,
credentials and upload options come from the configuration's ``[offbox]`` table (the client is
imported only when an s3:// location is used); an encrypted repository (an off-box copy,
docs/repository.md) opens with the age identity, transparently. Keys: recipients from
``age_recipients`` (``SBX_AGE_RECIPIENTS``), the identity from ``age_identity_file``
(``SBX_AGE_IDENTITY_FILE``) or the ``age_identity`` field of the ``sbx-secrets`` block named by
``offbox.secrets_block``. Key material never reaches a log.
"""

from __future__ import annotations

from pathlib import Path

import pyrage

from blocks.config import SbxConfig
from sbx.errors import AgeKeyError, ConfigError
from sbx.repository import Repository
from sbx.repository.encrypted import (
    EncryptedStorage,
    parse_identities,
    parse_recipients,
    read_marker,
)
from sbx.repository.locations import RepositoryLocation, local_storage
from sbx.repository.retention import lock_days
from sbx.repository.storage import Storage


def open_storage(location: str | Path | Storage, config: SbxConfig | None = None) -> Storage:
    """The storage at ``location``; S3 endpoint, credentials and options from ``config.offbox``.

    Without ``config`` an s3:// location uses the standard ``AWS_*`` variables and the AWS
    credential chain.
    """
    if isinstance(location, Storage):
        return location
    parsed = RepositoryLocation.parse(location)
    if parsed.is_s3:
        from tasks.clients.s3.storage import connect

        if config is None:
            return connect(parsed.text)
        days = lock_days(config.retention, config.offbox.lock_days)
        return connect(parsed.text, config.offbox, lock_days=days)
    return local_storage(parsed.text)


def open_repository(config: SbxConfig, repo: str | None, *, create: bool = False) -> Repository:
    """The repository named by ``repo``, else by the stack's configuration."""
    location = RepositoryLocation.parse(repo or config.repository.location)
    storage = open_encrypted(config, location.text)
    opener = Repository.open_or_init if create else Repository.open
    return opener(storage, lock_stale_after_s=config.repository.lock_stale_after_s)


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


def open_encrypted(
    config: SbxConfig, location: str | Storage, *, keys: AgeKeys | None = None
) -> Storage:
    """The storage at ``location``, decrypted when its repository says it is encrypted."""
    inner = open_storage(location, config)
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
