"""SIGKILL and SIGTERM at seeded moments of backups and in-place restores of the running example
stack: no partial snapshot, never a mix of old and new data, nothing left stopped afterwards.

Forked trials (crash_helpers.TrialServer) run the flows as the CLI does, without its start-up
cost; one trial of each kind goes through the real `sbx` CLI. "The next sbx command" after a
trial is `sbx status` (no Prefect, so cheap): it undoes a half-done swap and starts what a
killed run left stopped. Rerun with SBX_FAULT_SEED=<seed> (named in every failure message).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING

import pytest
from bed import RunningStack
from bed.stack import prepare_stack, start_stack, stop_stack

from sbx.repository import Repository
from tasks.restore.swap_journal import JOURNAL

from .crash_helpers import (
    Child,
    TrialServer,
    base_seed,
    kill_at,
    lock_pid,
    not_running,
    repository_problems,
    tree_digest,
)
from .figures import FaultFigures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))
from helpers import SBX, cli_env

if TYPE_CHECKING:
    from docker import DockerClient

SEED = 20261127
BACKUP_TRIALS = 10
RESTORE_TRIALS = 8
RESTORED_PARTS = ["notes", "agent-configs", "qdrant"]
RESTORED_TREE = ["notes", "agents", "data/qdrant"]  # no service writes there while it runs
COLD = '[parts.qdrant]\nmethod = "stop-copy"\n'
MiB = 1 << 20


@pytest.fixture(scope="module")
def crash_stack(
    standin_images: dict[str, str], run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """One running example stack for the module's trials (a stack costs ~20 s to bring up)."""
    stack = prepare_stack(tmp_path_factory.mktemp("crash") / "stack", run_id)
    try:
        start_stack(stack)
    except AssertionError:  # a loaded machine's health checks time out: give it longer, once
        _start_patiently(stack)
    try:
        yield stack
    finally:
        stop_stack(stack)


def _start_patiently(stack: RunningStack, timeout_s: float = 600) -> None:
    stack.compose("up", "-d", timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [
            json.loads(line)
            for line in stack.compose("ps", "-a", "--format", "json").stdout.splitlines()
            if line.strip()
        ]
        if rows and all(
            r["State"] == "running" and r.get("Health") in ("", "healthy") for r in rows
        ):
            return
        time.sleep(2)
    raise AssertionError(f"{stack.project} did not become healthy in {timeout_s} s")


@pytest.fixture(scope="module")
def trials(
    crash_stack: RunningStack, prefect_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrialServer]:
    server = TrialServer(
        cli_env(prefect_server, crash_stack.compose_env), tmp_path_factory.mktemp("trials")
    )
    yield server
    server.close()


def _stopped(stack: RunningStack) -> list[str]:
    return not_running(stack.compose("ps", "-a", "--format", "json").stdout)


def _markers(stack: RunningStack) -> list[Path]:
    return sorted((stack.path / ".sbx" / "stopped").glob("*.json"))


def _next_command(stack: RunningStack, env: dict[str, str]) -> str:
    """`sbx status`: what an operator types next. Its exit status is about health, not ours."""
    done = subprocess.run(
        [*SBX, "status", "--stack", str(stack.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return done.stderr


def _graceful(stack: RunningStack, repo: Path, pid: int, where: str) -> None:
    """Right after a SIGTERM, before any other command: everything started, lock released."""
    left = _stopped(stack)
    assert not left, f"{where}: SIGTERM left {left} stopped"
    assert not _markers(stack), f"{where}: SIGTERM left stop markers"
    lock = repo / "locks" / "writer.json"
    holder = lock_pid(lock.read_bytes() if lock.exists() else None)
    assert holder != pid, f"{where}: SIGTERM kept the lock"


def _qdrant_stopped(stack: RunningStack, docker_engine: DockerClient) -> bool:
    """Marker written and dockerd has stopped the container: the cold copy is under way."""
    if not _markers(stack):
        return False
    container = docker_engine.containers.get(stack.compose("ps", "-q", "qdrant").stdout.strip())
    return container.status != "running"


def test_backups_killed_at_seeded_moments(
    crash_stack: RunningStack,
    trials: TrialServer,
    prefect_server: str,
    docker_engine: DockerClient,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    seed = base_seed(SEED)
    rng = Random(seed)
    stack, repo = crash_stack.path, tmp_path / "repo"
    env = cli_env(prefect_server, crash_stack.compose_env)
    # a cold copy of Qdrant long enough for kills to land while it is stopped
    ballast = stack / "data" / "qdrant" / "storage" / "ballast.bin"
    ballast.write_bytes(os.urandom(40 * MiB))
    started = time.monotonic()
    first = trials.start("backup", stack=str(stack), repo=str(repo))
    assert first.wait() == 0, first.tail()
    clean_s = time.monotonic() - started
    outcomes: Counter[str] = Counter()
    partial = left_stopped = 0
    for trial in range(BACKUP_TRIALS + 1):
        cold = trial % 2 == 0
        # drawn whatever the trial does, so that each trial's draws depend on the seed only
        sig = signal.SIGTERM if rng.random() < 0.35 else signal.SIGKILL
        while_stopped = cold and rng.random() < 0.5
        delay = rng.uniform(0.0, clean_s * 1.1)
        cli = trial == BACKUP_TRIALS  # the last one through the real CLI, SIGTERM while stopped
        if cli:
            sig, while_stopped = signal.SIGTERM, True
        where = f"SBX_FAULT_SEED={seed} backup trial {trial} ({sig.name}, cold={cold})"
        (stack / "sbx.toml").write_text(COLD if cold else "")
        ballast.touch()  # changed since the last snapshot: read again
        args = ["backup", "--stack", str(stack), "--repo", str(repo)]
        child: Child | subprocess.Popen[bytes] = (
            _popen(env, *args) if cli else trials.start("backup", stack=str(stack), repo=str(repo))
        )
        if while_stopped:
            _wait_until(child, lambda: _qdrant_stopped(crash_stack, docker_engine), where)
            delay = 0.0
        outcome = _kill(child, delay, sig)
        outcomes[outcome] += 1
        assert outcome not in ("failed",), f"{where}: {_tail(child)}"
        if outcome == "SIGTERM":
            _graceful(crash_stack, repo, child.pid, where)
        found, problems = repository_problems(str(repo))
        partial += found
        assert not problems, f"{where}: {problems[:5]}"
        _next_command(crash_stack, env)
        left = _stopped(crash_stack)
        left_stopped += len(left)
        assert not left and not _markers(crash_stack), f"{where}: {left} still stopped"
    verified = subprocess.run(
        [*SBX, "verify", "--all", "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verified.returncode == 0, f"SBX_FAULT_SEED={seed}: {verified.stderr[-3000:]}"
    fault_figures.add(
        request.node.name,
        trials_run=BACKUP_TRIALS + 1,
        partial_snapshots=partial,
        services_left_stopped=left_stopped,
    )
    print(f"backup trials (seed {seed}): {dict(outcomes)}, clean run {clean_s:.1f} s")
    (stack / "sbx.toml").unlink()
    ballast.unlink()


def test_in_place_restores_killed_at_seeded_moments(
    crash_stack: RunningStack,
    trials: TrialServer,
    prefect_server: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    seed = base_seed(SEED + 1)
    rng = Random(seed)
    stack, repo = crash_stack.path, tmp_path / "repo"
    env = cli_env(prefect_server, crash_stack.compose_env)
    # Qdrant's data swapped as files, the service stopped; a loaded machine is slow to be healthy
    (stack / "sbx.toml").write_text(f"restore_health_timeout_s = 600\n{COLD}")
    ballast = stack / "data" / "qdrant" / "storage" / "ballast.bin"
    snapshots: dict[str, str] = {}  # tree digest -> snapshot id
    for version in ("a", "b"):
        ballast.write_bytes(os.urandom(8 * MiB))
        (stack / "notes" / "version.md").write_text(f"version {version}\n")
        (stack / "agents" / f"only-in-{version}.yml").write_text(f"{version}: true\n")
        (stack / "agents" / f"only-in-{'b' if version == 'a' else 'a'}.yml").unlink(missing_ok=True)
        backup = trials.start("backup", stack=str(stack), repo=str(repo))
        assert backup.wait() == 0, backup.tail()
        snapshots[tree_digest(stack, RESTORED_TREE)] = Repository.open(repo).list_snapshots()[-1]
    assert len(snapshots) == 2
    live = tree_digest(stack, RESTORED_TREE)

    def restore(target: str) -> Child:
        return trials.start(
            "restore-in-place",
            stack=str(stack),
            repo=str(repo),
            snapshot=target,
            parts=RESTORED_PARTS,
        )

    started = time.monotonic()
    clean = restore(next(s for d, s in snapshots.items() if d != live))
    assert clean.wait() == 0, clean.tail()
    clean_s = time.monotonic() - started
    live = tree_digest(stack, RESTORED_TREE)
    assert live in snapshots
    outcomes: Counter[str] = Counter()
    partial = left_stopped = mixed = 0
    for trial in range(RESTORE_TRIALS + 1):
        sig = signal.SIGTERM if rng.random() < 0.35 else signal.SIGKILL
        in_swap = rng.random() < 0.6  # most kills near the swap: that is where a mix could be
        delay = rng.uniform(0.0, 1.5) if in_swap else rng.uniform(0.0, clean_s * 1.1)
        cli = trial == RESTORE_TRIALS  # the last one through the real CLI: SIGKILL in the swap
        if cli:
            sig, in_swap = signal.SIGKILL, True
        where = f"SBX_FAULT_SEED={seed} restore trial {trial} ({sig.name}, in swap: {in_swap})"
        target = next(s for d, s in snapshots.items() if d != live)
        restore_args = ["--stack", str(stack), "--repo", str(repo)]
        restore_args += [a for p in RESTORED_PARTS for a in ("--part", p)]
        child: Child | subprocess.Popen[bytes] = (
            _popen(env, "restore", target, "--in-place", *restore_args) if cli else restore(target)
        )
        if in_swap:  # from the moment the swap stops Qdrant
            _wait_until(child, lambda: bool(_markers(crash_stack)), where)
        outcome = _kill(child, delay, sig)
        outcomes[outcome] += 1
        assert outcome != "failed", f"{where}: {_tail(child)}"
        if outcome == "SIGTERM":
            _graceful(crash_stack, repo, child.pid, where)
            assert not (stack / JOURNAL).exists(), f"{where}: SIGTERM left a half-done swap"
        swap_left = (stack / JOURNAL).exists()
        status_err = _next_command(crash_stack, env)
        assert not (stack / JOURNAL).exists(), f"{where}: {status_err[-2000:]}"
        now = tree_digest(stack, RESTORED_TREE)
        mixed += now not in snapshots
        assert now in snapshots, f"{where}: the live data is neither the old nor the new version"
        if outcome == "finished":
            assert snapshots[now] == target, where
        if swap_left:
            outcomes["undone mid-swap"] += 1
            assert now == live, where  # a half-done swap is undone: the previous data
        live = now
        left = _stopped(crash_stack)
        left_stopped += len(left)
        assert not left and not _markers(crash_stack), f"{where}: {left} still stopped"
        found, problems = repository_problems(str(repo))
        partial += found
        assert not problems, f"{where}: {problems[:5]}"
    fault_figures.add(
        request.node.name,
        trials_run=RESTORE_TRIALS + 1,
        partial_snapshots=partial,
        services_left_stopped=left_stopped,
    )
    print(f"in-place restore trials (seed {seed}): {dict(outcomes)}, clean {clean_s:.1f} s")
    assert mixed == 0


# -- one trial, forked or through the CLI ----------------------------------------------------------


def _wait_until(
    child: Child | subprocess.Popen[bytes], condition: object, where: str, timeout_s: float = 180
) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if isinstance(child, Child) and not child.running():
            return
        if isinstance(child, subprocess.Popen) and child.poll() is not None:
            return
        time.sleep(0.005)
    raise AssertionError(f"{where}: never reached its kill point")


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*SBX, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill(child: Child | subprocess.Popen[bytes], delay_s: float, sig: signal.Signals) -> str:
    if isinstance(child, Child):
        return kill_at(child, delay_s, sig)
    try:
        child.wait(delay_s)
    except subprocess.TimeoutExpired:
        child.send_signal(sig)
        child.wait(180)
        return sig.name
    return "finished" if child.returncode == 0 else "failed"


def _tail(child: Child | subprocess.Popen[bytes]) -> str:
    return child.tail() if isinstance(child, Child) else f"CLI exit {child.returncode}"
