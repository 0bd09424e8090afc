"""Alert delivery through real Prefect notification blocks to a webhook receiver in a thread."""

from __future__ import annotations

from pathlib import Path

import pytest
from bed.webhook import WebhookReceiver, save_webhook_block
from health_helpers import report, result

from blocks.config import SbxConfig
from tasks.alerts import STATE_FILE, load_state
from tasks.health.steps import send_alerts


def test_failed_delivery_is_logged_and_sent_next_run(
    prefect_server: str, tmp_path: Path, run_id: str
) -> None:
    with WebhookReceiver() as receiver:
        block = save_webhook_block(f"sbx-delivery-{run_id}", receiver.url)
        config = SbxConfig(
            stack_dir=tmp_path,
            alerts={"pager": {"block": block}, "broken": {"block": "custom-webhook/no-such"}},
        )
        failing = report(result("disk:stack", "failing", observed="1.0 GiB free"), stack=tmp_path)
        receiver.fail_next = 1
        first = send_alerts.fn(config, failing)
        assert [(d.target, d.delivered) for d in first] == [("pager", False), ("broken", False)]
        assert "sent again on the next health run" in (first[0].error or "")
        assert receiver.take() == []
        told = load_state(tmp_path / STATE_FILE).checks["disk:stack"].targets
        assert told == {}  # nothing was delivered: nothing remembered as told

        second = send_alerts.fn(config, failing)
        assert [(d.target, d.delivered) for d in second] == [("pager", True), ("broken", False)]
        (alert,) = receiver.take()
        assert alert["subject"] == f"[sbx] FAILING disk:stack on {tmp_path.name}"
        assert "Observed: 1.0 GiB free" in alert["body"] and "Next step:" in alert["body"]

        third = send_alerts.fn(config, failing)
        assert [(d.target, d.delivered) for d in third] == [("broken", False)]
        assert receiver.take() == []


# apprise's email plugin imports the stdlib's imghdr, deprecated in 3.11 (their shim, not ours)
@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
def test_any_apprise_url_through_the_sbx_apprise_block(
    prefect_server: str, tmp_path: Path, run_id: str
) -> None:
    from blocks.alerts import SbxApprise

    with WebhookReceiver() as receiver:
        # apprise's json:// posts {"title", "message", "type", ...} to the receiver
        url = receiver.url.replace("http://", "json://")
        SbxApprise(url=url).save(f"sbx-apprise-{run_id}", overwrite=True)
        config = SbxConfig(
            stack_dir=tmp_path, alerts={"mail": {"block": f"sbx-apprise/sbx-apprise-{run_id}"}}
        )
        (delivery,) = send_alerts.fn(
            config, report(result("disk:stack", "failing"), stack=tmp_path)
        )
        assert delivery.delivered, delivery.error
        (alert,) = receiver.take()
        assert alert["title"].startswith("[sbx] FAILING disk:stack")
        assert "Next step:" in alert["message"]
