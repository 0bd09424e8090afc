"""The nightly run's off-box copy failing: the run fails and alert targets hear it once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bed.webhook import WebhookReceiver, save_webhook_block

from blocks.config import SbxConfig
from tasks.run_alerts import alert_run_failed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"


def test_a_failed_run_is_told_to_each_target_that_takes_failures(
    prefect_server: str, tmp_path: Path, run_id: str
) -> None:
    with WebhookReceiver() as receiver:
        block = save_webhook_block(f"sbx-run-failed-{run_id}", receiver.url)
        config = SbxConfig(
            stack_dir=tmp_path,
            alerts={
                "pager": {"block": block},
                "quiet": {"block": block, "on": ["recovered"]},
                "broken": {"block": "custom-webhook/no-such"},
            },
        )
        told = alert_run_failed.fn(config, "off-box copy", "the bucket is gone", "check it")
        assert [(d.target, d.delivered) for d in told] == [("pager", True), ("broken", False)]
        (alert,) = receiver.take()
    assert alert["subject"] == f"[sbx] FAILED off-box copy on {tmp_path.name}"
    assert "the bucket is gone" in alert["body"] and "Next step: check it" in alert["body"]


def test_nightly_backup_whose_copy_fails_alerts_once_and_fails(
    prefect_server: str, tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.backup import backup_stack

    stack = tmp_path / f"files-{run_id}"
    shutil.copytree(
        EXAMPLE, stack, symlinks=True, ignore=shutil.ignore_patterns("data", ".sbx", "*.log")
    )
    monkeypatch.delenv("SBX_AGE_RECIPIENTS", raising=False)
    with WebhookReceiver() as receiver:
        block = save_webhook_block(f"sbx-nightly-{run_id}", receiver.url)
        # an off-box copy with no age recipients cannot start: a failure before any S3 call
        (stack / "sbx.toml").write_text(
            f'[offbox]\nurl = "s3://sbx-nowhere/box"\n\n[alerts.pager]\nblock = "{block}"\n'
        )
        with pytest.raises(Exception, match="recipients"):
            backup_stack(stack=str(stack), repo=str(tmp_path / "repo"), offbox=True)
        (alert,) = receiver.take()
    assert alert["subject"] == f"[sbx] FAILED off-box copy on {stack.name}"
    assert "is stored on the box" in alert["body"] and "sbx copy" in alert["body"]
