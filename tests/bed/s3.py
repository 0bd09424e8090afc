"""S3 over HTTP: moto in server mode, in its own process on a free loopback port.

A subprocess rather than moto's ThreadedMotoServer: pytest turns warnings into errors
process-wide, which inside a server thread would become 500s, and a separate process uses the
second core for uploads.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .services import (
    free_port,
    http_status,
    log_tail,
    require_service,
    stop_process,
    wait_until,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Server:
    """Where the session's S3 server answers, and the credentials it accepts (any work)."""

    endpoint_url: str
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    region: str = "us-east-1"
    bucket_prefix: str = "sbx-test"
    _counter: Iterator[int] = field(default_factory=itertools.count, repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables that point an SDK or the sbx CLI at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self) -> S3Client:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name unless given) and return its name."""
        bucket = name or f"{self.bucket_prefix}-{next(self._counter)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


@contextlib.contextmanager
def s3_session(workdir: Path, run_id: str) -> Iterator[S3Server]:
    port = free_port()
    log_path = workdir / "moto.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is not None or http_status(f"{url}/moto-api/") == 200,
            timeout=60,
        )
        if proc.poll() is not None or http_status(f"{url}/moto-api/") != 200:
            require_service(
                "s3",
                f"moto's server did not answer at {url} within 60 s (exit {proc.poll()}; "
                f"is moto[server] installed? uv sync); its log {log_path}:\n{log_tail(log_path)}",
            )
        yield S3Server(endpoint_url=url, bucket_prefix=f"sbx-{run_id}")
    finally:
        stop_process(proc)
