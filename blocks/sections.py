"""The sections of the box's configuration that describe the stack and where its backups go
(``[services]``, ``[parts]``, ``[repository]``, ``[offbox]``, ``[alerts]``, ``[compose]``): one
pydantic model each, gathered by :class:`blocks.config.SbxConfig`.

The sections that tune one runbook each (``[health]``, ``[gpu]``, ``[restore]``, ``[drill]``,
``[logs]``, ``[upgrade]``) are in :mod:`blocks.runbook_sections`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AlertEvent = Literal["failing", "recovered", "reminder"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("failing", "recovered", "reminder")


class _Model(BaseModel):
    # unknown keys are typos: refuse them instead of silently ignoring the operator's intent
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceKind(StrEnum):
    OPENAI = "openai"
    QDRANT = "qdrant"
    WEBUI = "webui"
    PROXY = "proxy"
    AGENT = "agent"


class ServiceConfig(_Model):
    """One service of the stack as sbx sees it."""

    compose_service: str = Field(description="Service name in the compose file.")
    kind: ServiceKind = Field(description="What API the service speaks; picks its checks.")
    url: str | None = Field(
        default=None,
        description="Base URL to probe. Unset: derived from the container's published port.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Container port of the HTTP API; unset: the only published TCP port.",
    )
    health_path: str = Field(default="/health", description="Path that answers 2xx when healthy.")
    exposure: bool = Field(
        default=False, description="True for services meant to be reachable from outside (proxy)."
    )
    required: bool = Field(
        default=True,
        description="A required service that is not running makes status and health fail. "
        "An optional one absent from the compose file is not reported.",
    )
    enabled: bool = Field(default=True, description="False removes the service from sbx's view.")

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("health_path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path starting with '/'")
        return value


class ConsistencyMethod(StrEnum):
    COPY = "copy"  # plain copy
    IMMUTABLE = "immutable"  # hashed once, SHA256SUMS kept beside each model dir
    QDRANT_SNAPSHOT = "qdrant-snapshot"  # snapshot API, else stop-copy-start
    SQLITE_ONLINE = "sqlite-online"  # SQLite online backup API for *.db, files copied
    GROWING_LOG = "growing-log"  # copy, recording the size read of files that grow
    STOP_COPY = "stop-copy"  # stop the part's service, copy, start it again (always)
    DOCKER_VOLUME = "docker-volume"  # named volumes, read and written through Docker


class PartConfig(_Model):
    """One part of a backup: which paths, and how they are made consistent."""

    paths: list[str] = Field(description="Paths relative to the stack directory.")
    method: ConsistencyMethod = Field(description="How the part is captured consistently.")
    include: list[str] = Field(default_factory=list, description="Glob patterns to keep (all).")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns to leave out.")
    service: str | None = Field(default=None, description="Service whose data this is.")
    enabled: bool = Field(default=True, description="False leaves the part out of backups.")
    optional: bool = Field(
        default=False,
        description="True: a source the compose file names (bind mount, volume, env_file) that "
        "is missing is noted, not a failure of the part.",
    )

    @field_validator("paths")
    @classmethod
    def _relative_inside_stack(cls, value: list[str]) -> list[str]:
        for path in value:
            if Path(path).is_absolute() or ".." in Path(path).parts:
                raise ValueError(f"paths relative to the stack directory, without '..' ({path!r})")
        return value


class RepositoryConfig(_Model):
    location: str = Field(
        default="~/sealed-box-ai/backups/repo",
        description="Directory of the repository on the box, or s3://bucket/prefix.",
    )
    lock_stale_after_s: int = Field(
        default=60, ge=5, description="A lock whose holder stopped heartbeating this long is taken."
    )


class OffboxConfig(_Model):
    url: str | None = Field(default=None, description="s3://bucket/prefix for off-box copies.")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint; unset: AWS_ENDPOINT_URL or AWS."
    )
    region: str | None = Field(default=None, description="Region; unset: AWS_DEFAULT_REGION.")
    storage_class: str | None = Field(default=None, description="e.g. STANDARD_IA, GLACIER_IR.")
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    credentials_block: str | None = Field(
        default=None, description="Name of a prefect-aws AwsCredentials block; unset: AWS chain."
    )
    multipart_threshold_mib: int = Field(
        default=64, ge=5, description="Objects this large (MiB) go up as multipart uploads."
    )
    part_size_mib: int = Field(default=8, ge=5, description="Part size of multipart uploads.")
    part_workers: int = Field(
        default=8, ge=1, le=64, description="Parts of one upload sent (and held in memory) at once."
    )
    secrets_block: str | None = Field(
        default=None,
        description="Name of an sbx-secrets block whose age_identity decrypts the off-box copy; "
        "unset: age_identity_file (SBX_AGE_IDENTITY_FILE) only.",
    )
    object_lock: Literal["governance", "compliance"] | None = Field(
        default=None,
        description="S3 Object Lock mode of every object written (the bucket must have Object "
        "Lock enabled); unset: objects are not locked.",
    )
    lock_days: int | None = Field(
        default=None,
        ge=1,
        description="Lock each object at least this many days; unset or shorter: as long as "
        "the [retention] policy keeps a snapshot (docs/repository.md, 'Object Lock').",
    )

    @field_validator("url")
    @classmethod
    def _is_s3_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("an s3://bucket/prefix URL")
        return value


class AlertTarget(_Model):
    block: str = Field(description="Prefect notification block as 'block-type/name'.")
    on: list[AlertEvent] = Field(
        default_factory=lambda: list(ALERT_EVENTS), description="Which changes to send."
    )


class ComposeConfig(_Model):
    project: str | None = Field(
        default=None,
        description="Compose project name; unset: COMPOSE_PROJECT_NAME, the file's name:, "
        "or the stack directory's name, as docker compose decides.",
    )
    files: list[str] = Field(
        default_factory=list,
        description="Compose files relative to the stack; unset: COMPOSE_FILE or compose's "
        "defaults.",
    )
