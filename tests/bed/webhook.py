"""A webhook receiver in a thread and the Prefect notification block that posts to it: where
alert tests (health, failed runs, upgrades) see what sbx sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
