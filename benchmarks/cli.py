"""Benchmark: how long an operator waits for an `sbx` command that does almost nothing (#20).

    uv run python benchmarks/cli.py [--repeat 5] [--json OUT]

Read-only commands (`--help`, `snapshots`, `changelog`, `server status`, and `status` of a
stack without containers) should answer at once: target ≤ 1.0 s each. A command that runs a
Prefect flow pays a fixed cost before and after its work (imports, creating and finishing the
flow run): measured as `sbx verify` of a repository holding one tiny snapshot, with the local
Prefect server already running; target ≤ 2.0 s. Each command runs `--repeat` times as its own
process, the median is reported, after one unmeasured warm-up run (the page cache, bytecode).
Everything lives in a temporary directory with its own SBX_HOME and server port.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SBX = [sys.executable, "-m", "sbx"]
READ_ONLY_TARGET_S = 1.0
FLOW_TARGET_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CPU: dict[str, list[float]] = {}  # CPU seconds (user + sys) of each timed run, per command


def timed(argv: list[str], env: dict[str, str], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``sbx argv`` (after one warm-up run); their CPU
    seconds go to :data:`CPU` (less sensitive than wall time to other work on the machine)."""
    took, cpu = [], CPU.setdefault(" ".join(argv), [])
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([*SBX, *argv], env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1):  # status exits 1 when Docker has no containers
            raise SystemExit(f"sbx {' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        if i:
            took.append(elapsed)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def prepare(work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A stack of a few files with one change-log entry, and a repository with its backup."""
    stack = work / "stack"
    (stack / "env").mkdir(parents=True)
    (stack / "docker-compose.yml").write_text("services: {}\n", encoding="utf-8")
    (stack / "env" / "stack.env").write_text("MODEL=org/m\n", encoding="utf-8")
    sys.path.insert(0, str(ROOT))
    from tasks.changelog import append_change

    append_change(stack, action="config", target="logs", before=None, after={"file": "x"})
    repo = work / "repo"
    done = subprocess.run(
        [*SBX, "backup", "--stack", str(stack), "--repo", str(repo)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the benchmark's backup failed: {done.stderr}")
    return stack, repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="write the raw seconds here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {"SBX_HOME": str(work / "home"), "SBX_SERVER_PORT": str(free_port()), "COLUMNS": "80"}
    try:
        stack, repo = prepare(work, env)  # also starts this run's local Prefect server
        commands = {
            "sbx --help": ["--help"],
            "sbx snapshots": ["snapshots", "--repo", str(repo)],
            "sbx changelog": ["changelog", "--stack", str(stack)],
            "sbx server status": ["server", "status"],
            "sbx status (no containers)": ["status", "--stack", str(stack)],
        }
        results = {name: timed(argv, env, args.repeat) for name, argv in commands.items()}
        flow = timed(["verify", "--repo", str(repo)], env, args.repeat)
        cpu = dict(zip([*results, "sbx verify (runs a flow)"], CPU.values(), strict=True))
    finally:
        subprocess.run(
            [*SBX, "server", "stop", "--force"], env=env, capture_output=True, check=False
        )
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
          f"load {load[0]:.1f}, Python {platform.python_version()}")  # fmt: skip
    print("| command | median s | range s | CPU s (user+sys), median |\n|---|---:|---|---:|")
    for name, took in [*results.items(), ("sbx verify (runs a flow)", flow)]:
        print(
            f"| {name} | {statistics.median(took):.2f} | {min(took):.2f}–{max(took):.2f} "
            f"| {statistics.median(cpu[name]):.2f} |"
        )
    worst = max(statistics.median(t) for t in results.values())
    verdict = "PASS" if worst <= READ_ONLY_TARGET_S else "FAIL"
    print(f"{verdict}  read-only commands ≤ {READ_ONLY_TARGET_S} s: slowest median {worst:.2f}")
    verdict = "PASS" if statistics.median(flow) <= FLOW_TARGET_S else "FAIL"
    print(f"{verdict}  flow-running command ≤ {FLOW_TARGET_S} s: {statistics.median(flow):.2f}")
    if args.json:
        raw = {**results, "verify": flow, "cpu": cpu}
        args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
