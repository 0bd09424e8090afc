"""`sbx init` names the box once (#20 deliverable 1): the stack's sbx.toml, and the stack every
command without --stack acts on."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

SBX = [sys.executable, "-m", "sbx"]


def sbx(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    return subprocess.run(
        [*SBX, *args], capture_output=True, text=True, timeout=120,
        env={**base, "SBX_HOME": str(home), "COLUMNS": "80", **env},
    )  # fmt: skip


def _stack(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "docker-compose.yml").write_text("services: {}\n")
    return path


def test_init_writes_the_config_and_every_command_then_acts_on_the_stack(tmp_path: Path) -> None:
    home, stack = tmp_path / "home", _stack(tmp_path / "box" / "stack")
    (stack / "sbx.toml").write_text("# the operator's note\n[health]\nrpo_hours = 30\n")
    done = sbx(home, "init", "--stack", str(stack), "--repo", str(tmp_path / "repo"))
    assert done.returncode == 0, done.stderr
    assert all(len(line) <= 80 or str(tmp_path) in line for line in done.stdout.splitlines())
    text = (stack / "sbx.toml").read_text()
    assert "# the operator's note" in text and "rpo_hours = 30" in text  # kept as it was
    assert tomllib.loads(text)["repository"]["location"] == str(tmp_path / "repo")
    again = sbx(home, "init", "--offbox", "s3://box-7/sbx")  # the stack is remembered
    assert again.returncode == 0, again.stderr
    assert tomllib.loads((stack / "sbx.toml").read_text())["offbox"]["url"] == "s3://box-7/sbx"
    assert f"stack          {stack}" in again.stdout
    # a command without --stack acts on the named stack
    (stack / ".sbx").mkdir()
    log = sbx(home, "changelog", "verify")
    assert str(stack / ".sbx" / "changelog.jsonl") in log.stdout + log.stderr, log.stderr
    # SBX_STACK_DIR still wins
    other = _stack(tmp_path / "other")
    log = sbx(home, "changelog", "verify", SBX_STACK_DIR=str(other))
    assert str(other / ".sbx" / "changelog.jsonl") in log.stdout + log.stderr, log.stderr


def test_init_refuses_what_is_not_a_stack_and_a_config_it_would_break(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = sbx(home, "init", "--stack", str(tmp_path))
    assert done.returncode == 2 and "holds no compose file" in done.stderr
    assert not (home / "box.toml").exists()
    stack = _stack(tmp_path / "stack")
    bad = sbx(home, "init", "--stack", str(stack), "--offbox", "http://x")
    assert bad.returncode == 2 and "s3://bucket/prefix" in bad.stderr
    (stack / "sbx.toml").write_text("[repository\n")  # not TOML: left as it is
    broken = sbx(home, "init", "--stack", str(stack), "--repo", str(tmp_path / "r"))
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr
    assert (stack / "sbx.toml").read_text() == "[repository\n"
    (stack / "sbx.toml").write_text("repository = 3\n")  # valid TOML, not a table
    wrong = sbx(home, "init", "--stack", str(stack), "--repo", str(tmp_path / "r"))
    assert wrong.returncode == 2 and "'repository' is not a table" in wrong.stderr
    assert (stack / "sbx.toml").read_text() == "repository = 3\n"
    assert not (home / "box.toml").exists()
