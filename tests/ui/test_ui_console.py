"""The Prefect UI as the operator's console, seen in headless Chromium: a backup and a verify run
through the sbx CLI against sbx's own local server (UI included), then the run list, the
Artifacts page and a report's history page show them. Screenshots go to test-output/ui/.

Chromium is a service like the others: missing, it skips when run by hand and fails under
CI=true (`apt-get install chromium`). A second test runs a backup and a restore drill of a running
copy of the example stack and finds the drill's run and its RTO report in the UI.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bed import RunningStack, require_service
from bed.local_prefect import PrefectApi, SbxHome, copy_files_stack, sbx_home
from cdp import Browser, find_chromium

from deployments.serve import PROJECT_ROOT

SHOTS = PROJECT_ROOT / "test-output" / "ui"
SBX = [sys.executable, "-m", "sbx"]


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        require_service("chromium", "no chromium on PATH; 'apt-get install chromium' installs it")
    return found


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(chromium, tmp_path / "chromium-profile")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[SbxHome]:
    with sbx_home(tmp_path / "sbx-home") as home:
        yield home


def sbx(home: SbxHome, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*SBX, *args], capture_output=True, text=True, env=home.env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_runs_and_artifacts_show_in_the_ui(home: SbxHome, browser: Browser, tmp_path: Path) -> None:
    stack = copy_files_stack(tmp_path / "stack")
    repo = tmp_path / "repo"
    sbx(home, "backup", "--stack", str(stack), "--repo", str(repo))
    sbx(home, "verify", "latest", "--repo", str(repo), "--stack", str(stack))

    api = PrefectApi(home.api_url)
    try:
        runs: list[dict[str, Any]] = api.post("/flow_runs/filter", {"limit": 20})
        keys = {a["key"] for a in api.post("/artifacts/filter", {"limit": 50}) if a["key"]}
        progress = [
            a for a in api.post("/artifacts/filter", {"limit": 50}) if a["type"] == "progress"
        ]
    finally:
        api.close()
    names = [r["name"] for r in runs]
    backup = next(r for r in runs if r["name"].startswith(f"backup-{stack.parent.name}-stack-"))
    verify = next(r for r in runs if r["name"].startswith("verify-"))
    assert backup["state_type"] == verify["state_type"] == "COMPLETED", names
    backup_key = f"backup-{stack.name}"
    assert backup_key in keys and any(k.startswith("verify-") for k in keys), keys
    # the backup's progress bar reached 100 %
    assert [a["data"] for a in progress] == [100.0], progress

    browser.open(f"{home.ui_url}/runs")
    browser.wait_for_text(backup["name"], verify["name"])
    browser.screenshot(SHOTS / "runs.png")

    browser.open(f"{home.ui_url}/artifacts")
    browser.wait_for_text(backup_key, next(k for k in keys if k.startswith("verify-")))
    browser.screenshot(SHOTS / "artifacts.png")

    # a keyed report's page: the latest backup report, with its history below
    browser.open(f"{home.ui_url}/artifacts/key/{backup_key}")
    browser.wait_for_text(backup_key, "Backup of")
    browser.screenshot(SHOTS / "backup-report.png")

    browser.open(f"{home.ui_url}/runs/flow-run/{backup['id']}")
    browser.wait_for_text(backup["name"], "Completed")
    assert (SHOTS / "runs.png").stat().st_size > 10_000
    browser.screenshot(SHOTS / "backup-run.png")


def test_a_drill_and_its_report_show_in_the_ui(
    home: SbxHome, browser: Browser, running_stack: RunningStack, tmp_path: Path
) -> None:
    stack, repo = running_stack.path, tmp_path / "repo"
    sbx(home, "backup", "--stack", str(stack), "--repo", str(repo))
    sbx(home, "drill", "--stack", str(stack), "--repo", str(repo))

    api = PrefectApi(home.api_url)
    try:
        runs: list[dict[str, Any]] = api.post("/flow_runs/filter", {"limit": 20})
        keys = {a["key"] for a in api.post("/artifacts/filter", {"limit": 50}) if a["key"]}
    finally:
        api.close()
    drill = next(r for r in runs if r["name"].startswith("drill-"))
    assert drill["state_type"] == "COMPLETED", [r["name"] for r in runs]
    drill_key = f"drill-{stack.name}"
    assert drill_key in keys, keys

    browser.open(f"{home.ui_url}/runs")
    browser.wait_for_text(drill["name"])
    browser.open(f"{home.ui_url}/artifacts/key/{drill_key}")
    # the key's page lists the drill report by its description (the body is a click away)
    browser.wait_for_text(drill_key, "Restore drill of", ": passed")
    browser.screenshot(SHOTS / "drill-report.png")
