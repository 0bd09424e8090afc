"""`sbx changelog` and `sbx changelog verify` through the console script (no Prefect needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tasks.changelog import append_change, log_path


def sbx(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "sbx", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _stack(tmp_path: Path) -> Path:
    stack = tmp_path / "stack"
    stack.mkdir()
    for i in range(3):
        append_change(
            stack, action="model-swap", target="worker",
            before={"served_model_name": f"old-{i}"}, after={"served_model_name": f"new-{i}"},
        )  # fmt: skip
    return stack


def test_verify_intact_then_one_edited_byte(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    done = sbx("changelog", "verify", "--stack", str(stack))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 entries, chain intact" in done.stderr

    raw = bytearray(log_path(stack).read_bytes())
    raw[raw.index(b"new-1") + 4] = ord("7")  # one byte of entry 2
    log_path(stack).write_bytes(bytes(raw))
    done = sbx("changelog", "verify", "--stack", str(stack))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "line 2 (seq 2) is bad" in done.stderr
    assert "edited" in done.stderr


def test_show_renders_the_table(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    done = sbx("changelog", "--stack", str(stack))
    assert done.returncode == 0, done.stderr
    assert "model-swap" in done.stdout
    assert "old-2" in done.stdout and "new-2" in done.stdout
    lines = log_path(stack).read_bytes().splitlines(keepends=True)
    log_path(stack).write_bytes(b"".join(lines[:2]))  # the tail removed
    done = sbx("changelog", "--stack", str(stack))
    assert done.returncode == 1
    assert "removed from the end" in done.stderr
