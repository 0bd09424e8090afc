"""Canary secrets for the leak tests (issue #9, item 4): plant them, then scan what sbx produced.

A canary is a random value nobody else would write (``sbxcanary<name><hex>``: letters and digits
only, so it reads the same URL-encoded). ``Scan`` collects every place sbx wrote to — CLI output,
exception messages, Prefect logs, run states and artifacts, bucket keys and bodies, files — and
reports each hit as "where: which canary". A hit is a leak.

``denying_s3()`` runs an S3 endpoint that refuses every request the way AWS does for an unknown key
(403 InvalidAccessKeyId, the key id echoed in the XML body): a command with bad credentials.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def canary(name: str) -> str:
    return f"sbxcanary{name}{secrets.token_hex(8)}"


@dataclass
class Scan:
    """Canary values by name, and the hits found so far."""

    canaries: dict[str, str]
    hits: list[str] = field(default_factory=list)
    places: int = 0

    def text(self, where: str, content: str | bytes) -> None:
        self.places += 1
        data = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
        lowered = data.lower()
        for name, value in self.canaries.items():
            if value.encode() in data or value.lower().encode() in lowered:
                self.hits.append(f"{where}: canary {name!r}")

    def files(self, where: str, root: Path, skip: Iterable[str] = ()) -> None:
        """Every file below ``root`` (names and bodies), but those under a ``skip`` prefix."""
        skipped = tuple(skip)
        for path in sorted(root.rglob("*")) if root.exists() else []:
            rel = str(path.relative_to(root))
            if rel.startswith(skipped):
                continue
            self.text(f"{where}: name {rel}", rel)
            if path.is_file() and not path.is_symlink():
                self.text(f"{where}/{rel}", path.read_bytes())

    def bucket(self, client: Any, bucket: str) -> int:
        """Every key and body of ``bucket``; returns the number of objects."""
        count = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                key = item["Key"]
                self.text(f"s3://{bucket} key", key)
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                self.text(f"s3://{bucket}/{key}", body)
                count += 1
        return count

    def prefect(self) -> dict[str, int]:
        """Logs, flow and task run states and parameters, and artifacts of the test's Prefect
        server; returns how many of each were read."""
        texts = asyncio.run(_prefect_texts())
        counts: dict[str, int] = {}
        for kind, where, text in texts:
            counts[kind] = counts.get(kind, 0) + 1
            self.text(f"prefect {kind} {where}", text)
        return counts


async def _prefect_texts() -> list[tuple[str, str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    out: list[tuple[str, str, str]] = []
    async with get_client() as client:
        offset = 0
        while batch := await client.read_logs(LogFilter(), limit=200, offset=offset):
            out += [("log", str(log.flow_run_id), log.message) for log in batch]
            offset += len(batch)
        offset = 0
        while runs := await client.read_flow_runs(limit=200, offset=offset):
            for run in runs:
                state = run.state
                text = f"{run.name} {run.parameters} {state.name if state else ''} "
                text += f"{state.message if state else ''}"
                out.append(("flow run", run.name, text))
            offset += len(runs)
        offset = 0
        while tasks := await client.read_task_runs(limit=200, offset=offset):
            for task in tasks:
                state = task.state
                out.append(("task run", task.name, f"{task.name} {state.message if state else ''}"))
            offset += len(tasks)
        offset = 0
        while artifacts := await client.read_artifacts(limit=200, offset=offset):
            for artifact in artifacts:
                text = f"{artifact.key} {artifact.data} {artifact.description}"
                out.append(("artifact", str(artifact.key or artifact.id), text))
            offset += len(artifacts)
    return out


class _Deny(BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        found = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        key = found.group(1) if found else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code>'
            "<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
            f"<AWSAccessKeyId>{key}</AWSAccessKeyId><RequestId>deny</RequestId></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def denying_s3() -> Iterator[str]:
    """An S3 endpoint URL that answers every request 403 InvalidAccessKeyId."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Deny)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
