"""`sbx logs setup`: a logrotate file logrotate(8) accepts and runs, a compose override compose
applies to every service — checked with the real logrotate and the real compose binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bed import require_service

from blocks.config import load_config
from tasks.clients.compose import ComposeCli
from tasks.logs.setup import base_compose_files, logrotate_patterns

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"
SERVICES = ["internet-research", "open-webui", "proxy", "qdrant", "watchdog", "worker"]


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    dest = tmp_path / "box"
    shutil.copytree(
        EXAMPLE, dest, ignore=shutil.ignore_patterns("images", "data", ".sbx", "*.log*")
    )
    (dest / "logs" / "proxy").mkdir(parents=True, exist_ok=True)  # the example has it
    (dest / "logs" / "worker.log").write_text("one\ntwo\n")
    (dest / "logs" / "proxy" / "access.log").write_text("GET /\n")
    return dest


def sbx(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SBX_", "PREFECT_API"))}
    return subprocess.run(
        [sys.executable, "-m", "sbx", *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_setup_writes_an_override_compose_applies_to_every_service(stack: Path) -> None:
    compose_before = (stack / "docker-compose.yml").read_bytes()
    done = sbx("logs", "setup", "--stack", str(stack), SBX_LOGS__DOCKER_MAX_SIZE="25m")
    assert done.returncode == 0, done.stderr
    override = stack / "docker-compose.logging.yml"
    assert f"wrote {override}" in done.stdout
    # the files in use (the example's .env names the stand-ins' override), then the new one
    in_use = "-f docker-compose.yml -f compose.standins.yml -f docker-compose.logging.yml up -d"
    assert in_use in done.stderr
    assert (stack / "docker-compose.yml").read_bytes() == compose_before  # never edited
    files = ["docker-compose.yml", "docker-compose.logging.yml"]
    resolved = json.loads(ComposeCli(stack, files=files).run("config", "--format", "json").stdout)
    assert sorted(resolved["services"]) == SERVICES
    for spec in resolved["services"].values():
        assert spec["logging"]["driver"] == "json-file"
        assert spec["logging"]["options"] == {"max-size": "25m", "max-file": "3"}


def test_setup_without_a_compose_file_says_so_and_writes_no_override(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    done = sbx("logs", "setup", "--stack", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "No compose file" in done.stderr
    assert not (tmp_path / "docker-compose.logging.yml").exists()
    only = sbx("logs", "setup", "--stack", str(tmp_path), "--no-compose")
    assert only.returncode == 0, only.stderr
    assert (tmp_path / ".sbx" / "logrotate.conf").is_file()


def test_logrotate_accepts_the_file_and_rotates_with_it(stack: Path, tmp_path: Path) -> None:
    for tool in ("logrotate", "zstd"):
        if shutil.which(tool) is None:
            require_service(tool, f"apt-get install -y {tool} (.ci/run does)")
    target = tmp_path / "sbx-box.conf"
    done = sbx(
        "logs", "setup", "--stack", str(stack), "--no-compose", "--logrotate-file", str(target)
    )
    assert done.returncode == 0, done.stderr
    conf = target.read_text()
    assert "copytruncate" in conf and "rotate 14" in conf and "compressext .zst" in conf
    assert f'"{stack}/logs/proxy/*.log"' in conf  # '**' listed per directory
    state = tmp_path / "logrotate.state"
    debug = subprocess.run(
        ["logrotate", "-d", "-s", str(state), str(target)], capture_output=True, text=True
    )
    assert debug.returncode == 0, debug.stderr
    assert "error" not in debug.stderr.lower(), debug.stderr
    forced = subprocess.run(
        ["logrotate", "-f", "-s", str(state), str(target)], capture_output=True, text=True
    )
    assert forced.returncode == 0, forced.stderr
    rotated = sorted((stack / "logs").glob("worker.log-*.zst"))
    assert len(rotated) == 1 and (stack / "logs" / "worker.log").stat().st_size == 0
    unpacked = subprocess.run(["zstd", "-dc", str(rotated[0])], capture_output=True, check=True)
    assert unpacked.stdout == b"one\ntwo\n"


def test_the_override_follows_the_files_compose_would_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    monkeypatch.delenv("COMPOSE_PATH_SEPARATOR", raising=False)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    assert base_compose_files(load_config(tmp_path)) == ["docker-compose.yml"]
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    assert base_compose_files(load_config(tmp_path)) == [
        "docker-compose.yml",
        "docker-compose.override.yml",
    ]
    (tmp_path / ".env").write_text("# test\nCOMPOSE_FILE=a.yml:b.yml:docker-compose.logging.yml\n")
    assert base_compose_files(load_config(tmp_path)) == ["a.yml", "b.yml"]
    (tmp_path / "sbx.toml").write_text('[compose]\nfiles = ["c.yml"]\n')
    assert base_compose_files(load_config(tmp_path)) == ["c.yml"]


def test_logrotate_patterns_list_each_directory_for_double_star(tmp_path: Path) -> None:
    (tmp_path / "logs" / "agents" / "intel").mkdir(parents=True)
    assert logrotate_patterns(tmp_path, ["logs/**/*.log", "proxy/access.log"]) == [
        f"{tmp_path}/logs/*.log",
        f"{tmp_path}/logs/agents/*.log",
        f"{tmp_path}/logs/agents/intel/*.log",
        f"{tmp_path}/proxy/access.log",
    ]


def test_setup_records_what_it_wrote_in_the_change_log_once(stack: Path) -> None:
    from tasks.changelog import read_changes, verify_changes

    assert sbx("logs", "setup", "--stack", str(stack)).returncode == 0
    assert sbx("logs", "setup", "--stack", str(stack)).returncode == 0  # same files: no entry
    changed = sbx("logs", "setup", "--stack", str(stack), SBX_LOGS__KEEP="3")
    assert changed.returncode == 0, changed.stderr
    entries = [(e.action, e.target) for e in read_changes(stack)]
    assert entries == [
        ("config", "logs setup: .sbx/logrotate.conf"),
        ("config", "logs setup: docker-compose.logging.yml"),
        ("config", "logs setup: .sbx/logrotate.conf"),  # keep 3: only logrotate's file changed
    ]
    last = read_changes(stack)[-1]
    assert str(last.before).startswith("sha256:") and last.before != last.after
    assert verify_changes(stack).intact
