"""The rules of config drift (tasks/backup/drift_rules.py): what sbx explains, what alerts, and
what may be said of a changed file's content (key names and line counts, never a value)."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.backup.drift_rules import explained_by, is_config, is_sensitive, key_changes
from tasks.changelog import GENESIS, ChangeEntry

SINCE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _entry(action: str, target: str, time: str = "2026-01-02T03:04:05Z") -> ChangeEntry:
    return ChangeEntry(seq=1, time=time, action=action, target=target, prev_hash=GENESIS,
                       hash=GENESIS)  # fmt: skip


def test_key_files_say_which_keys_changed_and_never_a_value() -> None:
    old = b"# comment\nA=1\nexport B=secret-one\nC=3\n"
    new = b"A=1\nB=secret-two\nD=4\n"
    changes = key_changes(old, new)
    assert changes is not None
    assert (changes.added, changes.removed, changes.changed) == (["D"], ["C"], ["B"])
    assert "secret" not in changes.model_dump_json()
    keys = key_changes(b"ops sk-1\n", b"ops sk-1\nintruder sk-2\n")  # the proxy's keys file
    assert keys is not None and keys.added == ["intruder"] and "sk-2" not in keys.model_dump_json()


def test_other_text_counts_lines_and_binary_says_nothing() -> None:
    lines = key_changes(b"a.org\nb.org\n", b"a.org\nc.org\nd.org\n")
    assert lines is not None and (lines.lines_added, lines.lines_removed) == (2, 1)
    assert lines.added == lines.removed == lines.changed == []
    assert key_changes(b"\xff\xfe", b"x") is None and key_changes(None, b"x") is None


def test_what_sbx_changed_is_explained_and_only_since_the_previous_snapshot() -> None:
    swap = _entry("model-swap", "worker")
    assert explained_by("env/worker.env", [swap], SINCE) == swap
    assert explained_by("env/worker.env.pre-swap-20260102", [swap], SINCE) == swap
    assert explained_by("env/watchdog.env", [swap], SINCE) is None
    # the swap names the file it edited: the variables of the worker's arguments
    wired = _entry("model-swap", "worker").model_copy(
        update={"before": {"env_file": "env/stack.env"}}
    )
    assert explained_by("env/stack.env", [wired], SINCE) == wired
    assert explained_by("env/stack.env.pre-swap-20260102", [wired], SINCE) == wired
    assert explained_by("env/worker.env", [wired], SINCE) is None
    old_swap = _entry("model-swap", "worker", time="2026-01-02T03:04:04Z")
    assert explained_by("env/worker.env", [old_swap], SINCE) is None
    revoke = _entry("incident-revoke-key", "proxy/keys.txt")
    assert explained_by("proxy/keys.txt", [revoke], SINCE) == revoke
    assert explained_by("docker-compose.yml", [_entry("upgrade", "worker")], SINCE) is not None
    assert explained_by("agents/x/allowlist.txt", [_entry("restore", "stack")], SINCE)


def test_which_files_are_configuration_and_which_alert() -> None:
    assert is_config("configs", "env/worker.env") and is_config("agent-configs", "agents/a/b")
    assert not is_config("configs", ".sbx/changelog.jsonl") and not is_config("notes", "n.md")
    for path in ("agents/internet-research/allowlist.txt", "proxy/keys.txt", "proxy/tls/key.pem"):
        assert is_sensitive(path), path
    for path in ("env/worker.env", "agents/intel-sync/feeds.yml", "docker-compose.yml"):
        assert not is_sensitive(path), path
