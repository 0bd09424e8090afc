"""Shared by the health tests: a webhook receiver in a thread, report and target builders."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from blocks.config import ServiceConfig
from tasks.clients.docker_engine import ContainerInfo, PublishedPort
from tasks.health.model import CheckResult, HealthReport, ServiceTarget


class WebhookReceiver:
    """An HTTP server in a thread that records every POSTed JSON body.

    ``fail_next`` answers that many requests with 500 (and does not record them): a receiver
    that is down, as a notification block sees it.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    receiver.received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def take(self) -> list[dict[str, Any]]:
        """What arrived since the last call."""
        with self.lock:
            got, self.received = self.received, []
        return got

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def save_webhook_block(name: str, url: str) -> str:
    """A Custom Webhook notification block on the test's Prefect server; returns its ref."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name=name,
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,
    ).save(name, overwrite=True)
    return f"custom-webhook/{name}"


def result(
    check_id: str, state: str = "ok", parents: list[str] | None = None, **extra: Any
) -> CheckResult:
    family, _, target = check_id.partition(":")
    return CheckResult(
        id=check_id,
        family=family,
        target=target,
        state=state,  # type: ignore[arg-type]
        observed=extra.pop("observed", f"{check_id} is {state}"),
        next_step=extra.pop("next_step", "do the next thing" if state == "failing" else None),
        parents=parents or [],
        **extra,
    )


def report(*checks: CheckResult, stack: Path = Path("/srv/stack")) -> HealthReport:
    return HealthReport(
        stack_dir=stack,
        project="stack",
        host="box",
        started_at=datetime.now(UTC),
        duration_s=0.1,
        checks=list(checks),
    )


def container(
    name: str, *, state: str = "running", ports: list[tuple[str, int, int]] | None = None
) -> ContainerInfo:
    return ContainerInfo(
        id=f"id-{name}",
        name=f"stack-{name}-1",
        service=name,
        state=state,
        health=None,
        exit_code=0,
        restart_count=0,
        started_at=datetime.now(UTC),
        image_ref="img",
        image_id="sha256:0",
        repo_digests=[],
        ports=[
            PublishedPort(container_port=c, protocol="tcp", host_ip=ip, host_port=h)
            for ip, h, c in ports or []
        ],
    )


def target(
    name: str,
    kind: str,
    *,
    url: str | None = None,
    info: ContainerInfo | None = None,
    **config: Any,
) -> ServiceTarget:
    return ServiceTarget(
        name=name,
        config=ServiceConfig(compose_service=name, kind=kind, **config),  # type: ignore[arg-type]
        in_compose=True,
        depends_on=[],
        container=info,
        url=url,
    )
