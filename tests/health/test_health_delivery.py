"""Alert delivery through real Prefect notification blocks to a webhook receiver in a thread."""

from __future__ import annotations

from pathlib import Path

from health_helpers import WebhookReceiver, report, result, save_webhook_block

from blocks.config import SbxConfig
from tasks.alerts import STATE_FILE, load_state
from tasks.health.tasks import send_alerts


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
