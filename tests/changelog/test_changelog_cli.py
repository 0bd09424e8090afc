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


def test_the_timeline_fits_80_columns_and_says_what_changed(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    registry = "127.0.0.1:5000/sealed-box/"
    append_change(
        stack, action="upgrade", target="proxy, worker, watchdog, open-webui, qdrant",
        before={"images": {"worker": f"{registry}worker@sha256:{'a' * 64}"}},
        after={"images": {"worker": f"{registry}worker@sha256:{'b' * 64}"},
               "journal_entry": "20261206T2358Z-1", "outcome": "gate passed"},
    )  # fmt: skip
    append_change(
        stack, action="restore", target="stack",
        before={"kept_as": [f"data/part-{i}.pre-restore-20261206T235851" for i in range(9)]},
        after={"snapshot": "20261206T235500Z-3f1c0a9e", "parts": ["configs", "webui"]},
    )  # fmt: skip
    append_change(stack, action="incident-revoke-key", target="proxy",
                  before={"key": "sha256:3f1c0a9e5b7d2c48"}, after=None)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "changelog", "--stack", str(stack)],
        capture_output=True, text=True, env={**env, "COLUMNS": "80"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), done.stdout
    text = done.stdout
    # no Python repr, digests short, both ends of a long value kept
    assert "{'" not in text and "['" not in text and "a" * 13 not in text
    assert "worker aaaaaaaaaaaa → bbbbbbbbbbbb (gate passed)" in text
    assert "snapshot 20261206T235500Z-3f1c0a9e" in text and "part-8.pre-restore" in text
    assert "removed key sha256:3f1c0a9e5b7d2c48" in text
    assert "3 entries, chain intact" in done.stderr
    one = tmp_path / "one"
    one.mkdir()
    append_change(one, action="config", target="logs", before=None, after={"file": "x"})
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "changelog", "verify", "--stack", str(one)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert "1 entry, chain intact" in done.stderr
