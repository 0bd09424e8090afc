"""Building the S3 client of ``S3Storage``: URL parsing, endpoint, credentials, botocore config.

One client per storage, made once and shared by every thread (boto3 sessions are not
thread-safe, clients are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from blocks.config import OffboxConfig
from sbx.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from pydantic import SecretStr

#: an access key id and its secret, as the box's sbx-secrets block holds them
AccessKeys = tuple["SecretStr", "SecretStr"]

MiB = 1 << 20
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]
LOCK_MODES: dict[str, LockMode] = {"governance": "GOVERNANCE", "compliance": "COMPLIANCE"}


@dataclass(frozen=True)
class S3Options:
    """How objects are written; defaults suit a box uploading over a WAN link."""

    #: a file-like ``data`` of at least this many bytes goes up as a parallel multipart upload
    multipart_threshold: int = 64 * MiB
    part_size: int = 8 * MiB
    #: parts of one multipart upload in flight (and in memory) at once
    part_workers: int = 8
    storage_class: str | None = None
    server_side_encryption: str | None = None
    #: S3 Object Lock mode of every write but the lock's (object_lock.py); None: no lock
    object_lock: LockMode | None = None
    #: days each lock must last at least (the retention policy's span, retention.lock_days)
    lock_days: int = 0
    #: attempts of :meth:`S3Storage._call` around botocore's own retries (see retry_again)
    attempts: int = 4
    backoff_s: float = 0.2


def make_client(
    offbox: OffboxConfig,
    *,
    max_attempts: int = 10,
    lock_days: int = 0,
    keys: AccessKeys | None = None,
) -> tuple[S3Client, S3Options]:
    """A boto3 S3 client and the upload options, from ``offbox`` (else the standard AWS ways).

    Endpoint: ``offbox.endpoint_url``, else ``AWS_ENDPOINT_URL`` (boto3 reads it), else AWS.
    Region likewise (``AWS_DEFAULT_REGION``). Credentials: the prefect-aws ``AwsCredentials``
    block named by ``offbox.credentials_block``, loaded here (it needs the Prefect API), else
    ``keys`` (the box's sbx-secrets block), else the standard AWS chain (environment, profile,
    instance role). Nothing secret is logged.
    ``max_attempts`` is botocore's, per request (standard retry mode, exponential backoff).
    ``lock_days``: how long ``offbox.object_lock`` locks each object (when it is set).
    """
    import boto3
    from botocore.config import Config

    endpoint, region = offbox.endpoint_url, offbox.region
    session = boto3.session.Session()
    if keys is not None and not offbox.credentials_block:
        session = boto3.session.Session(
            aws_access_key_id=keys[0].get_secret_value(),
            aws_secret_access_key=keys[1].get_secret_value(),
        )
    if offbox.credentials_block:
        session, endpoint, region = _from_block(offbox.credentials_block, endpoint, region)
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=60,
        tcp_keepalive=True,
        # the copy engine's threads times the parts of their uploads
        max_pool_connections=max(10, 8 * offbox.part_workers),
        # checksums are chosen and sent explicitly (checksums.py); this stops botocore
        # adding a CRC32 of its own to every upload. Reads ask for ChecksumMode=ENABLED, which
        # botocore checks too; checksums.py checks again (it also covers resumed ranged reads).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = session.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    options = S3Options(
        multipart_threshold=offbox.multipart_threshold_mib * MiB,
        part_size=offbox.part_size_mib * MiB,
        part_workers=offbox.part_workers,
        storage_class=offbox.storage_class,
        server_side_encryption=offbox.server_side_encryption,
        object_lock=LOCK_MODES[offbox.object_lock] if offbox.object_lock else None,
        lock_days=lock_days,
    )
    return client, options


def _from_block(name: str, endpoint: str | None, region: str | None) -> tuple[Any, Any, Any]:
    from prefect_aws import AwsCredentials

    try:
        block: Any = AwsCredentials.load(name)  # sync here (no running event loop)
    except ValueError as exc:
        raise ConfigError(
            f"offbox.credentials_block names {name!r}, but no AwsCredentials block of that name "
            f"exists ({exc}). Create it (prefect block create aws-credentials) or fix the name."
        ) from exc
    params = block.aws_client_parameters
    return (
        block.get_boto3_session(),
        endpoint or params.endpoint_url,
        region or block.region_name,
    )
