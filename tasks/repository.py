"""Opening a repository: the one place that turns a location into a :class:`Repository`.

A location is a directory or ``s3://bucket/prefix`` (:class:`RepositoryLocation`). S3 endpoint,
credentials and upload options come from the configuration's ``[offbox]`` table (the client is
imported only when an s3:// location is used); an encrypted repository (an off-box copy,
docs/repository.md) opens with the age identity, transparently. Keys: recipients from
``age_recipients`` (``SBX_AGE_RECIPIENTS``), the identity from ``age_identity_file``
(``SBX_AGE_IDENTITY_FILE``) or the ``age_identity`` field of the box's ``sbx-secrets`` block
(tasks/secrets.py: ``offbox.secrets_block``, or ``sbx-secrets-<box>`` in a fleet), whose S3 keys
also sign S3 requests when no ``offbox.credentials_block`` is set. Key material never reaches a
log.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyrage

from blocks.config import SbxConfig
from sbx.errors import AgeKeyError
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
from tasks.secrets import load_secrets, secrets_block_name

if TYPE_CHECKING:
    from tasks.clients.s3.connect import AccessKeys


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
        return connect(parsed.text, config.offbox, lock_days=days, keys=_s3_keys(config))
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
    else:
        secrets = load_secrets(config)
        if secrets is not None and secrets.age_identity is not None:
            name = secrets_block_name(config)[0]
            identities = parse_identities(
                secrets.age_identity.get_secret_value(), f"block {name!r}"
            )
    return AgeKeys(recipients, identities)


def _s3_keys(config: SbxConfig) -> AccessKeys | None:
    """The box's S3 keys from its secrets block, unless an AwsCredentials block is named."""
    if config.offbox.credentials_block:
        return None
    secrets = load_secrets(config)
    if secrets is None or not (secrets.aws_access_key_id and secrets.aws_secret_access_key):
        return None
    return secrets.aws_access_key_id, secrets.aws_secret_access_key


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
