"""A moto server that enforces IAM: users whose policies S3 checks on every request.

moto's server mode accepts any credentials until ``/moto-api/reset-auth`` sets the number of
unauthenticated requests allowed (``INITIAL_NO_AUTH_ACTION_COUNT``); from then on each request
must be signed by an IAM user's key and is checked against that user's policies (action and
resource ARN; moto does not evaluate conditions). Its own process, so enforcing auth never
affects the session's shared server (``s3.py``).
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .s3 import S3Server, s3_session


@dataclass(frozen=True)
class IamS3:
    """The enforcing server, a bucket, and one S3Server view per IAM user."""

    bucket: str
    users: dict[str, S3Server]


def _enforce_auth(endpoint_url: str) -> None:
    # text/plain: a form content type would make the server parse the body away (a 500)
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        assert answer.status == 200


@contextlib.contextmanager
def iam_s3_session(
    workdir: Path,
    run_id: str,
    policies: dict[str, dict[str, Any]],
    *,
    object_lock: bool = False,
) -> Iterator[IamS3]:
    """A fresh moto server with one bucket (Object Lock enabled when asked) and one IAM user
    per entry of ``policies`` (user name -> policy document), then auth enforced."""
    import boto3

    with s3_session(workdir, run_id) as open_server:
        bucket = f"sbx-{run_id}-iam"
        open_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
        iam = boto3.client(
            "iam",
            endpoint_url=open_server.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=open_server.region,
        )
        users: dict[str, S3Server] = {}
        for name, document in policies.items():
            iam.create_user(UserName=name)
            iam.put_user_policy(
                UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(document)
            )
            key = iam.create_access_key(UserName=name)["AccessKey"]
            users[name] = S3Server(
                endpoint_url=open_server.endpoint_url,
                access_key_id=key["AccessKeyId"],
                secret_access_key=key["SecretAccessKey"],
            )
        _enforce_auth(open_server.endpoint_url)
        yield IamS3(bucket=bucket, users=users)
