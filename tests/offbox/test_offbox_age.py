"""The age of the off-box copy against the RPO: `sbx verify --repo s3://…` warns when its newest
snapshot is older, and `sbx health` has a check for it once offbox.url is set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from bed import S3Server

from blocks.config import SbxConfig
from offbox.conftest import Sbx
from offbox.keys import AgeKey
from tasks.health import backups
from tasks.health.checks import run_check


def _ok(done: Any) -> None:
    assert done.returncode == 0, done.stderr[-3000:]


def test_verify_and_health_report_an_offbox_copy_older_than_the_rpo(
    run_sbx: Sbx,
    files_stack: Path,
    tmp_path: Path,
    s3_server: S3Server,
    age_key: AgeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{s3_server.make_bucket()}/box1"
    keys = {"SBX_AGE_RECIPIENTS": age_key.recipient, "SBX_AGE_IDENTITY_FILE": str(age_key.file)}
    env = {**s3_server.env(), **keys}
    from flows.backup import backup_stack

    at = ["--stack", str(files_stack)]
    for name, value in {**env, "SBX_OFFBOX__URL": url}.items():
        monkeypatch.setenv(name, value)
    # the scheduled backup, then the off-box copy, in this process
    backup_stack(
        stack=str(files_stack), repo=str(tmp_path / "repo"), trigger="schedule", offbox=True
    )
    time.sleep(1.5)  # the copy's snapshot is now older than an RPO of 0.36 s

    stale = run_sbx("verify", *at, "--repo", url, env={**env, "SBX_HEALTH__RPO_HOURS": "0.0001"})
    _ok(stale)  # no damage: a stale copy is a warning here, health fails on it
    said = " ".join(stale.stderr.split())
    assert "warning" in said and f"newest snapshot in {url}" in said, said[-2000:]
    assert "(RPO 0.0001 h): run 'sbx copy'" in said, said[-2000:]
    fresh = run_sbx("verify", *at, "--repo", url, env=env)
    _ok(fresh)
    assert "newest snapshot in" not in fresh.stderr

    def offbox_check(rpo_hours: float) -> Any:
        cfg = SbxConfig(
            stack_dir=files_stack,
            offbox={"url": url},  # type: ignore[arg-type]
            health={"rpo_hours": rpo_hours},  # type: ignore[arg-type]
        )
        checks = {check.id: check for check in backups.plan(cfg, str(tmp_path / "repo"))}
        return run_check(checks["backup:offbox-copy"])

    late = offbox_check(0.0001)
    assert late.state == "failing" and "h old (RPO 0.0001 h)" in late.observed, late
    assert "sbx copy" in (late.next_step or "")
    assert offbox_check(26).state == "ok"
    monkeypatch.delenv("SBX_OFFBOX__URL")
    no_copy = SbxConfig(stack_dir=files_stack)
    assert [c.id for c in backups.plan(no_copy, str(tmp_path))] == ["backup:newest-snapshot"]
