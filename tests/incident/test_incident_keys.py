"""The keys file: fingerprints, reading, atomic removal that keeps everything else."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tasks.incident.keys import (
    is_fingerprint,
    key_fingerprint,
    match_keys,
    read_keys,
    remove_keys,
)

TEXT = (
    "# API keys: NAME KEY\n"
    "\n"
    "ops    sk-ops-FAKE-1   # the operators\n"
    "webui\tsk-webui-FAKE-2\n"
    "  # agent below\n"
    "agent sk-agent-FAKE-3\n"
    "lonely\n"
)


def test_fingerprint_is_the_spec_formula() -> None:
    fp = key_fingerprint("sk-agent-FAKE-3")
    assert fp == "sha256:" + hashlib.sha256(b"sk-agent-FAKE-3").hexdigest()[:16]
    assert is_fingerprint(fp) and not is_fingerprint("agent") and not is_fingerprint("sha256:xy")


def test_read_keys_names_lines_and_masks_values(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(TEXT)
    keys = read_keys(path)
    assert [(k.name, k.line) for k in keys] == [("ops", 3), ("webui", 4), ("agent", 6)]
    assert "sk-agent-FAKE-3" not in repr(keys) and "sk-agent-FAKE-3" not in str(keys)
    assert match_keys(keys, "agent") == match_keys(keys, key_fingerprint("sk-agent-FAKE-3"))
    assert read_keys(tmp_path / "absent.txt") == []


def test_remove_keeps_comments_order_and_mode_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(TEXT)
    path.chmod(0o640)
    removed = remove_keys(path, {key_fingerprint("sk-webui-FAKE-2")})
    assert [k.name for k in removed] == ["webui"]
    assert path.read_text() == TEXT.replace("webui\tsk-webui-FAKE-2\n", "")
    assert path.stat().st_mode & 0o777 == 0o640
    before = path.stat().st_mtime_ns
    assert remove_keys(path, {key_fingerprint("sk-webui-FAKE-2")}) == []
    assert path.stat().st_mtime_ns == before  # nothing to do: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["keys.txt"]  # no temporary file left
