"""`sbx incident recover`: refused without --yes (nothing changed); on the running stack it
restores the snapshot in place, then passes the health checks and the prompt suite."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bed import RunningStack

from flows.backup import backup_stack
from flows.incident.recover import incident_recover
from sbx.errors import RecoverRefused, RecoveryFailed
from tasks.changelog import read_changes
from tasks.incident.record import (
    current_incident,
    incident_dir,
    open_or_current,
    read_actions,
    record_action,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"


def tree_digest(root: Path) -> str:
    """One hash of every path, mode and content under ``root`` (links by target)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest.update(f"{path.relative_to(root)} {st.st_mode}\n".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def sbx_cli(*args: str, prefect_api: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_api, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "sbx", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_recover_with_a_snapshot_but_without_yes_changes_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(EXAMPLE, stack, symlinks=True, ignore=shutil.ignore_patterns("images"))
    before = tree_digest(stack)
    # an API nobody answers: the refusal must come before any flow run or server start
    done = sbx_cli("incident", "recover", "--snapshot", "latest", "--stack", str(stack),
                   prefect_api="http://127.0.0.1:9/api")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "replaces the stack's live data; nothing was changed" in done.stderr
    assert "--yes" in done.stderr
    assert tree_digest(stack) == before
    assert not (stack / ".sbx").exists()


def test_the_flow_refuses_too_without_opening_an_incident(
    prefect_server: str, tmp_path: Path
) -> None:
    with pytest.raises(RecoverRefused, match="nothing was changed"):
        incident_recover(snapshot="latest", stack=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_recover_restores_the_snapshot_then_checks_health_and_prompts(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = running_stack.path
    repo = str(tmp_path / "repo")
    snapshot = backup_stack(stack=str(stack), repo=repo).snapshot_id
    lost = stack / "notes" / next(p.name for p in (stack / "notes").iterdir() if p.is_file())
    original = lost.read_bytes()
    lost.unlink()  # what the intruder did
    opened = open_or_current(stack, "contain")
    record_action(stack, opened.id, "contain", "revoked agent",
                  details={"revoked": ["sha256:0123456789abcdef"]})  # fmt: skip

    report = incident_recover(snapshot="latest", yes=True, repo=repo, stack=str(stack))

    assert report.ok, report.problems
    assert lost.read_bytes() == original
    assert report.restored == snapshot
    assert any(k.startswith(".sbx/restores/") and k.endswith("/notes") for k in report.kept_as)
    assert report.health_checks > 0 and report.health_failing == []
    assert report.suite is not None
    assert {r.name for r in report.suite.results} == {"answers", "long-context"}
    assert all(r.passed for r in report.suite.results)
    # the snapshot predates the revocation: the keys file it brought back may hold the key
    [warning] = report.warnings
    assert "restored after 'sbx incident contain'" in warning
    info = current_incident(stack)
    assert info is not None and info.id == report.incident_id == opened.id
    actions = read_actions(stack, info.id)[1:]
    assert [a.step for a in actions] == ["recover"] * 3
    assert [a.ok for a in actions] == [True] * 3
    assert actions[0].details["restored"] == snapshot
    assert actions[1].details["health_failing"] == []
    assert actions[2].summary == "prompt suite on worker: 2 of 2 passed"
    assert len({a.flow_run_id for a in actions}) == 1 and actions[0].flow_run_id
    assert [c.action for c in read_changes(stack)] == ["restore"]
    assert (incident_dir(stack, info.id) / "actions.jsonl").is_file()


def test_a_stack_that_is_not_running_fails_naming_checks_and_prompts(
    prefect_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(EXAMPLE, stack, symlinks=True, ignore=shutil.ignore_patterns("images"))
    (stack / "sbx.toml").write_text(f'[repository]\nlocation = "{tmp_path / "repo"}"\n')
    with pytest.raises(RecoveryFailed) as failed:
        incident_recover(stack=str(stack))
    report = failed.value.report
    assert report.restored is None and "container:worker" in report.health_failing
    assert report.suite is None
    message = str(failed.value)
    assert "health checks failing: " in message and "container:worker" in message
    assert "prompt suite on worker: worker has no reachable URL" in message
    actions = read_actions(stack, report.incident_id)
    assert [(a.step, a.ok) for a in actions] == [("recover", False), ("recover", False)]
