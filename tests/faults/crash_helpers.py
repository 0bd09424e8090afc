"""Crash trials of the fault suite: sbx flows run in forked children, killed at seeded moments.

A CLI run costs ~3-4 s of Prefect import and start-up before any work, so most trials run the
same flow functions in a child forked from a long-lived *trial server*: a Python process that
imported Prefect and sbx's flows once and has started no thread (forking a threaded process such
as pytest's is unsafe). The test asks it for a trial, gets the child's pid, and SIGKILLs or
SIGTERMs that pid at the moment it picked with ``random.Random(seed)``. The child runs the flow in
its main thread exactly as the CLI does (Prefect's SIGTERM bridge included).

Rerun one failing trial alone: the failure message names ``SBX_FAULT_SEED=<seed>`` and the trial;
``SBX_FAULT_SEED`` replaces a test's base seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
# imported once by the trial server, before any fork: what the children then need not import
PRELOAD = ("prefect", "flows.backup", "flows.restore", "flows.offbox", "flows.prune")


def base_seed(default: int) -> int:
    return int(os.environ.get("SBX_FAULT_SEED", default))


# -- what a child runs (by name, in the forked child) ---------------------------------------------


def _backup(stack: str, repo: str) -> None:
    from flows.backup import backup_stack

    backup_stack(stack=stack, repo=repo)


def _restore_in_place(stack: str, repo: str, snapshot: str, parts: list[str]) -> None:
    from flows.restore import restore_snapshot

    restore_snapshot(snapshot=snapshot, in_place=True, parts=parts, repo=repo, stack=stack)


def _copy(stack: str, repo: str, to: str) -> None:
    from flows.offbox import copy_offbox

    copy_offbox(to=to, repo=repo, stack=stack)


def _prune(stack: str, repo: str, keep_last: int) -> None:
    from flows.prune import prune_repository

    prune_repository(
        keep_last=keep_last, keep_daily=0, keep_weekly=0, keep_monthly=0, repo=repo, stack=stack
    )


def _swap_cut(stack: str, moves: list[list[str]], staging: str, cut: int, sig: int) -> None:
    """The in-place restore's swap, with ``sig`` sent to itself after ``cut`` renames."""
    import pathlib

    from tasks.restore.swap_journal import swap_paths

    real_rename = pathlib.Path.rename
    done = 0

    def rename(self: pathlib.Path, target: Any) -> Any:
        nonlocal done
        if done == cut:
            os.kill(os.getpid(), sig)
        done += 1
        return real_rename(self, target)

    pathlib.Path.rename = rename  # type: ignore[method-assign]
    pairs = [(Path(src), Path(dst)) for src, dst in moves]
    swap_paths(Path(stack), pairs, "test swap", discard=[Path(staging)])


TRIALS: dict[str, Callable[..., None]] = {
    "swap-cut": _swap_cut,
    "backup": _backup,
    "restore-in-place": _restore_in_place,
    "copy": _copy,
    "prune": _prune,
}


def _child(request: dict[str, Any]) -> None:
    """In the forked child: output to the trial's log, environment set, run, exit (never return)."""
    code = 1
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(request["env"])
        TRIALS[request["trial"]](**request["kwargs"])
        code = 0
    except BaseException:  # the child reports everything through its log and exit status
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(preload: tuple[str, ...]) -> None:
    """The trial server's loop: one JSON request a line on stdin, one JSON answer on stdout."""
    import importlib

    for name in preload:
        importlib.import_module(name)
    answer = sys.stdout
    answer.write(json.dumps({"ready": True, "threads": threading.active_count()}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            pid = os.fork()
            if pid == 0:
                _child(request)
            reply: dict[str, Any] = {"pid": pid}
        else:  # "wait"
            _, status = os.waitpid(request["pid"], 0)
            reply = {"returncode": os.waitstatus_to_exitcode(status)}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


# -- the test's side ---------------------------------------------------------------------------


class TrialServer:
    """The long-lived process that forks one child per trial (see the module docstring)."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, preload: tuple[str, ...] = PRELOAD
    ) -> None:
        self.log_dir = log_dir
        path = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from faults.crash_helpers import serve; serve({preload!r})"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**env, "PYTHONPATH": path},
            text=True,
            cwd=REPO,
        )
        hello = self._read()
        if hello.get("threads") != 1:
            raise AssertionError(f"the trial server has threads before forking: {hello}")
        self.count = 0

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the trial server died (exit {self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self._read()

    def start(self, trial: str, env: dict[str, str] | None = None, **kwargs: Any) -> Child:
        self.count += 1
        log = self.log_dir / f"trial-{self.count:03d}-{trial}.log"
        reply = self._ask(
            {"op": "run", "trial": trial, "kwargs": kwargs, "env": env or {}, "log": str(log)}
        )
        return Child(self, int(reply["pid"]), log)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Child:
    """One forked trial: kill it, wait for it (its parent, the trial server, reaps it)."""

    server: TrialServer
    pid: int
    log: Path
    returncode: int | None = None

    def running(self) -> bool:
        """Alive and not a zombie (a finished child stays a zombie until the server reaps it)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        return fields[0] != "Z"

    def kill(self, sig: signal.Signals) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = int(self.server._ask({"op": "wait", "pid": self.pid})["returncode"])
        return self.returncode

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 120) -> bool:
        """Until ``condition()`` holds (True) or the child ended (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if not self.running():
                return False
            time.sleep(0.005)
        raise AssertionError(f"trial {self.log.name} never reached its kill point")


def kill_at(child: Child, delay_s: float, sig: signal.Signals) -> str:
    """Send ``sig`` after ``delay_s`` (if it still runs); what happened, for the figures."""
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and child.running():
        time.sleep(0.005)
    child.kill(sig)
    code = child.wait()
    if code == 0:
        return "finished"  # done before its moment came
    return sig.name if code == -sig else "failed"


# -- what a trial checks -----------------------------------------------------------------------


def tree_digest(root: Path, rels: list[str]) -> str:
    """One sha256 over every node under ``rels``: path, type, mode, content or link target."""
    digest = hashlib.sha256()
    for rel in rels:
        top = root / rel
        if not (top.exists() or top.is_symlink()):
            digest.update(f"{rel}: missing\n".encode())
            continue
        nodes = [top, *sorted(top.rglob("*"))] if top.is_dir() and not top.is_symlink() else [top]
        for path in nodes:
            st = path.lstat()
            digest.update(f"{path.relative_to(root)} {st.st_mode:o}\n".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                digest.update(path.read_bytes())
    return digest.hexdigest()


def repository_problems(location: str | Any) -> tuple[int, list[str]]:
    """(snapshots found partial, every problem): each listed snapshot must load and verify."""
    from sbx.errors import SbxError
    from sbx.repository import Repository

    repository = Repository.open(location)
    partial: set[str] = set()
    problems: list[str] = []
    ids = repository.list_snapshots()
    for snapshot_id in ids:
        try:
            repository.load_snapshot(snapshot_id)
        except SbxError as exc:
            partial.add(snapshot_id)
            problems.append(f"{snapshot_id} does not load: {exc}")
    report = repository.verify(None)
    for damage in report.damaged:
        partial.add(damage.snapshot_id)
        problems.append(damage.describe())
    return len(partial), problems


def lock_pid(raw: bytes | None) -> int | None:
    """The pid holding a writer lock (``locks/writer.json``), None when there is no lock.

    A lock left after a SIGTERM may be an earlier SIGKILLed run's (stale, taken over by the next
    writer): only a lock of the terminated process itself is a lock it failed to release.
    """
    return None if raw is None else int(json.loads(raw)["pid"])


def not_running(compose_ps_json: str) -> list[str]:
    """Services of ``docker-compose ps -a --format json`` output that are not running."""
    rows = [json.loads(line) for line in compose_ps_json.splitlines() if line.strip()]
    return sorted(str(r["Service"]) for r in rows if r.get("State") != "running")


SIGNALS = (signal.SIGKILL, signal.SIGTERM)
