"""botocore / boto3 / urllib3 exceptions turned into sbx's storage errors, for ``S3Storage``.

Which failures are retryable (restic's rule: say it in writing):

- retryable: throttling (``SlowDown``, ``Throttling``…), any 5xx, ``RequestTimeout``, conflicting
  concurrent conditional writes (409), connection refused / reset / closed, connect and read
  timeouts, truncated bodies, bodies whose S3 checksum does not match (damaged in transit);
- permanent: no such bucket, access denied, invalid or missing credentials, invalid arguments
  (a wrong storage class or SSE setting), and every other 4xx.

Messages name the bucket and key and the next step. They never carry credentials: botocore's
own messages name the error code and operation, never the keys, and we add only the location.
"""

from __future__ import annotations

import http.client
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from sbx.errors import (
    BodyMismatch,
    DeleteDenied,
    ObjectMissing,
    StorageError,
    UploadGone,
    WriteConflict,
)

CHECK_LOCATION = (
    "Check the bucket in the s3:// URL (offbox.url or --repo) and the endpoint "
    "(offbox.endpoint_url or AWS_ENDPOINT_URL)."
)
CHECK_CREDENTIALS = (
    "Check the credentials (the AwsCredentials block named by offbox.credentials_block, or "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / the AWS profile) and the bucket policy."
)
TRY_AGAIN = "The S3 endpoint is busy or the network is unreliable; run the command again."

_NO_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AccountProblem",
        "InvalidObjectState",  # archived (GLACIER) object: needs a restore request first
    }
)
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "ConditionalRequestConflict",
        "BadDigest",  # the body S3 received does not match our checksum: damaged on the way
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    }
)
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    meta: Any = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode") or 0)


def translate(
    exc: BaseException, action: str, location: str, key: str | None
) -> StorageError | None:
    """The storage error for ``exc``, raised while trying to ``action`` ``key`` in ``location``;
    None when ``exc`` is no S3 or transport error (a bug: let it through unchanged)."""
    if isinstance(exc, StorageError):
        return exc
    where = f"{key} in {location}" if key else location
    if isinstance(exc, ClientError):
        return _client_error(exc, action, where, location, key)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"Could not {action} {where}: no usable S3 credentials were found ({exc}). "
            f"{CHECK_CREDENTIALS}",
            key=key,
            retryable=False,
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(
            f"Could not {action} {where}: the S3 endpoint does not answer ({exc}). If it "
            f"stays down: {CHECK_LOCATION}",
            key=key,
            retryable=True,
        )
    if isinstance(exc, FlexibleChecksumError):
        return BodyMismatch(
            f"Could not {action} {where}: the body differs from the checksum S3 stored "
            f"(damaged in transit, or at rest: {exc}). {TRY_AGAIN}",
            key=key,
        )
    if isinstance(
        exc,
        ConnectionError
        | HTTPClientError
        | IncompleteReadError
        | Urllib3HTTPError
        | http.client.HTTPException
        | OSError,
    ):
        return StorageError(
            f"Could not {action} {where}: the transfer failed ({type(exc).__name__}: {exc}). "
            f"{TRY_AGAIN}",
            key=key,
            retryable=True,
        )
    if isinstance(exc, ParamValidationError):
        return StorageError(
            f"Could not {action} {where}: invalid S3 request ({exc}). This is a bug in sbx "
            "or a wrong offbox option; check offbox.storage_class and "
            "offbox.server_side_encryption.",
            key=key,
            retryable=False,
        )
    if isinstance(exc, BotoCoreError):
        return StorageError(f"Could not {action} {where}: {exc}.", key=key, retryable=False)
    return None


def _client_error(
    exc: ClientError, action: str, where: str, location: str, key: str | None
) -> StorageError:
    code, status = error_code(exc), http_status(exc)
    seen = f"{code or 'error'}, HTTP {status}" if status else code or "error"
    if code == "PreconditionFailed" or status == 412:
        return WriteConflict(f"{where} already exists", key=key)
    if code == "NoSuchUpload":
        return UploadGone(
            f"Could not {action} {where}: its multipart upload was aborted meanwhile (another "
            f"sbx cleaning up?). {TRY_AGAIN}",
            key=key,
        )
    if key and (code in _MISSING_KEY or (status == 404 and code not in _NO_BUCKET)):
        return ObjectMissing(location, key)
    if code in _NO_BUCKET or (status == 404 and not key):
        bucket = location.removeprefix("s3://").split("/", 1)[0]
        return StorageError(
            f"Could not {action} {where}: bucket {bucket!r} does not exist ({seen}). Create it, "
            f"or {CHECK_LOCATION[0].lower()}{CHECK_LOCATION[1:]}",
            key=key,
            retryable=False,
        )
    if action == "delete" and (code in ("AccessDenied", "AccessDeniedByLock") or status == 403):
        return DeleteDenied(
            f"Could not delete {where}: the credentials in use may not delete there ({seen}). "
            "Off-box copies are meant to be append-only for the box (docs/repository.md, "
            "'Off-box copies'): prune them from an administrator's machine whose credentials "
            f"may delete, with 'sbx prune --repo {location}'.",
            key=key,
        )
    if code in _DENIED or status in (401, 403):
        return StorageError(
            f"Could not {action} {where}: access denied ({seen}). {CHECK_CREDENTIALS}",
            key=key,
            retryable=False,
        )
    if code in _TRANSIENT or status >= 500 or status in (408, 409, 429):
        return StorageError(
            f"Could not {action} {where}: S3 answered {seen}. {TRY_AGAIN}",
            key=key,
            retryable=True,
        )
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return StorageError(
        f"Could not {action} {where}: S3 refused it ({seen}: {message}). Check the offbox "
        "options (storage_class, server_side_encryption; object_lock needs a bucket made with "
        "Object Lock enabled) and the bucket's settings.",
        key=key,
        retryable=False,
    )


def retry_again(exc: BaseException, error: StorageError) -> bool:
    """Whether ``S3Storage._call`` should try once more after botocore gave up or never saw it.

    botocore already retried throttling, 5xx and connection failures of the request itself
    (standard mode, ``max_attempts``): trying those again would multiply the waits. What it
    never retries: a body cut off or damaged while being read (after botocore returned),
    and 409 conflicting conditional writes.
    """
    if not error.retryable:
        return False
    if isinstance(exc, ClientError):
        return http_status(exc) == 409 or error_code(exc) == "ConditionalRequestConflict"
    return not isinstance(exc, EndpointConnectionError | ConnectTimeoutError)
