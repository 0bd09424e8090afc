"""Prefect block types of sbx: which box a deployment acts on, and the box's secrets.

Block type slugs are part of the interface (saved blocks refer to them): never change them once
released. Secrets are ``SecretStr`` and are unwrapped only inside ``tasks/clients/``.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.alerts import SbxApprise


class SbxBox(Block):
    """The stack a deployment acts on: where it lives and where its backups go.

    One block per box; deployments name it so a run triggered from the Prefect UI knows its stack.
    """

    _block_type_name: ClassVar[str] = "sbx box"
    _block_type_slug: ClassVar[str] = "sbx-box"
    _description: ClassVar[str] = "A sealed box's compose stack, as sbx manages it."

    stack_dir: str = Field(
        default="~/sealed-box-ai/stack", description="Directory holding docker-compose.yml."
    )
    config_file: str | None = Field(
        default=None, description="sbx.toml to use; unset: <stack_dir>/sbx.toml."
    )
    repository: str | None = Field(
        default=None, description="Repository directory or s3://bucket/prefix; unset: sbx.toml."
    )


class SbxSecrets(Block):
    """Secrets sbx needs: off-box S3 keys, the age identity, alert webhooks, service API keys.

    Masked in the UI."""

    _block_type_name: ClassVar[str] = "sbx secrets"
    _block_type_slug: ClassVar[str] = "sbx-secrets"
    _description: ClassVar[str] = "Credentials and keys for sbx; never written to sbx.toml or logs."

    aws_access_key_id: SecretStr | None = Field(
        default=None, description="S3 access key id; unset: the standard AWS chain."
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret access key."
    )
    age_identity: SecretStr | None = Field(
        default=None, description="age identity (AGE-SECRET-KEY-1...) to decrypt off-box copies."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="Webhook that receives alerts (may embed a token)."
    )
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="API key by compose service name, for a key the compose file does not show "
        "(e.g. in Qdrant's config file); wins over the one sbx reads from the compose file.",
    )


BLOCK_TYPES: tuple[type[Block], ...] = (SbxBox, SbxSecrets, SbxApprise)
