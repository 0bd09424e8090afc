"""`sbx logs rotate` as an operator runs it: the rotate-logs flow on the test Prefect server,
also three times in a row while a writer appends 1,000 lines/s — no line lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from log_helpers import StartWriter, check_every_line_once, read_all
from writer import line

from tasks.logs.fs import filesystem_type
from tasks.logs.plan import rotated_files
from tasks.reports import artifact_key


def sbx(prefect_api: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SBX_", "PREFECT_API"))}
    done = subprocess.run(
        [sys.executable, "-m", "sbx", *args],
        capture_output=True,
        text=True,
        env={**clean, "PREFECT_API_URL": prefect_api, "COLUMNS": "200", **env},
        timeout=300,
    )
    assert "Starting temporary server" not in done.stderr, done.stderr
    return done


def test_dry_run_changes_nothing_then_rotate_reports_and_cuts(
    prefect_server: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "worker.log"
    live.write_bytes(b"".join(line(n) for n in range(400)))
    before = live.read_bytes()

    dry = sbx(
        prefect_server, "logs", "rotate", "--stack", str(tmp_path), "--dry-run", "--force", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    [directory] = report["directories"]
    assert directory["method"] == "collapse-range"  # ext4 here
    assert [f["action"] for f in directory["files"]] == ["would-rotate"]
    assert live.read_bytes() == before and not rotated_files(live)

    done = sbx(prefect_server, "logs", "rotate", "--stack", str(tmp_path), "--force")
    assert done.returncode == 0, done.stderr
    assert "rotated" in done.stdout and "guarantee: lossless" in done.stderr
    assert len(rotated_files(live)) == 1
    lines, _ = read_all(live)
    check_every_line_once(lines, 400)
    markdown = latest_artifact(artifact_key("logs", tmp_path.name))
    assert "# Log rotation: 1 of 1 files rotated" in markdown
    assert "collapse-range" in markdown and "lossless" in markdown


def latest_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    newest = max(found, key=lambda a: a.created or 0)
    return str(newest.data)


def test_three_flow_runs_under_a_1000_lines_per_second_writer_lose_no_line(
    prefect_server: str, tmp_path: Path, start_writer: StartWriter
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "worker.log"
    writer = start_writer(live, 1000.0, 600.0)  # stopped by SIGTERM below
    for _ in range(3):
        done = sbx(
            prefect_server, "logs", "rotate", "--stack", str(tmp_path), SBX_LOGS__MAX_SIZE="8KiB"
        )
        assert done.returncode == 0, done.stderr
        assert writer.poll() is None, "the writer stopped before the rotations were done"
    writer.send_signal(signal.SIGTERM)
    out, _ = writer.communicate(timeout=30)
    written = int(out)
    assert len(rotated_files(live)) == 3
    lines, padding = read_all(live)
    check_every_line_once(lines, written)
    assert len(padding) <= 1


def test_a_filesystem_without_the_method_fails_the_run_naming_the_file(
    prefect_server: str,
) -> None:
    shm = Path("/dev/shm")
    if filesystem_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm on this machine")
    stack = Path(tempfile.mkdtemp(prefix="sbx-logs-cli-", dir=shm))
    try:
        (stack / "logs").mkdir()
        live = stack / "logs" / "worker.log"
        live.write_bytes(b"".join(line(n) for n in range(400)))
        done = sbx(
            prefect_server,
            "logs",
            "rotate",
            "--stack",
            str(stack),
            "--force",
            SBX_LOGS__METHOD="collapse-range",
        )
        assert done.returncode == 1, done.stderr
        assert "logs/worker.log: refused" in done.stderr
        assert "Nothing was cut from those files" in done.stderr
        check_every_line_once(live.read_bytes().splitlines(), 400)
    finally:
        shutil.rmtree(stack, ignore_errors=True)
