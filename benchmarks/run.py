"""Benchmark sbx's backup and restore against cp -a, tar czf, borg and restic.

    uv run python benchmarks/run.py --scale 1.0 [--json OUT] [--keep]

Generates a synthetic stack with shared/bench/make_stack.py, then times, per tool: a full
backup, an unchanged re-run, a restore (into an empty directory), the peak RSS of each command,
and the repository size. sbx is measured twice: the data path (the repository engine alone,
every part a plain tree) and the whole `sbx backup` / `sbx restore` command with sbx's local
Prefect server already running. All runs are warm-cache (the tree was just written and fits in
RAM); each command runs once. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MiB = 1 << 20
STACK = "benchstack"  # the compose project name: must not match a running project on the host
# Runs argv in a child, prints its wall seconds and peak RSS (KiB) as JSON on the last line.
WRAP = """import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
sys.stdout.write(p.stdout)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": p.returncode, "wall": wall, "rss_kib": rss}))
"""
# The data path: the repository engine alone, every default part as a plain tree.
ENGINE = """import sys, time
from pathlib import Path
from blocks.config import DEFAULT_PARTS
from sbx.repository import Repository
op, src, repo_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
repo = Repository.open_or_init(repo_dir)
if op != "restore":
    with repo.writer(command="benchmark") as w:
        w.begin_snapshot(previous=repo.latest_snapshot())
        for name, part in DEFAULT_PARTS.items():
            with w.part(name, "copy") as p:
                for rel in part["paths"]:
                    p.add_tree(src / rel, rel)
        w.commit()
else:
    repo.restore("latest", src)
print(time.perf_counter() - t)
"""


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        self.env |= {
            "SBX_HOME": str(work / "sbx-home"),
            "SBX_SERVER_PORT": str(free_port()),
            "RESTIC_PASSWORD": "benchmark",
            "RESTIC_CACHE_DIR": str(work / "restic-cache"),
            "BORG_BASE_DIR": str(work / "borg-home"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        }
        self.results: dict[str, dict[str, Any]] = {}

    def run(self, tool: str, what: str, argv: list[str], cwd: Path | None = None) -> str:
        """Run argv in its own wrapper process; record wall seconds and peak RSS."""
        p = subprocess.run(
            [sys.executable, "-c", WRAP, *argv],
            cwd=cwd or self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        log = self.work / "logs" / f"{tool.replace(' ', '-')}-{what}.log"  # kept with --keep
        log.parent.mkdir(exist_ok=True)
        log.write_text(p.stderr, encoding="utf-8")
        *lines, last = p.stdout.rstrip("\n").split("\n")
        m = json.loads(last)
        if m["rc"] != 0:
            raise SystemExit(f"{tool} {what} failed ({m['rc']}): {' '.join(argv)}\n{p.stderr}")
        rec = self.results.setdefault(tool, {})
        rec[what] = round(m["wall"], 2)
        rec["rss_mib"] = max(rec.get("rss_mib", 0.0), round(m["rss_kib"] / 1024, 1))
        print(f"  {tool:12s} {what:8s} {m['wall']:7.2f} s  {m['rss_kib'] / 1024:6.0f} MiB")
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) of regular files under path (apparent sizes)."""
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            p = Path(root, name)
            if p.is_file() and not p.is_symlink():
                files += 1
                size += p.stat().st_size
    return files, size


def check_restored(tool: str, target: Path, expect: tuple[int, int]) -> None:
    got = tree_size(target)
    if got != expect:
        raise SystemExit(f"{tool} restored {got} (files, bytes), expected {expect}")
    shutil.rmtree(target)


def bench_sbx(b: Bench, sbx: str, stack: Path) -> tuple[int, int]:
    """sbx first: its first backup writes data/models/*/SHA256SUMS, which the peers then see."""
    repo = b.work / "repo-sbx"
    for what in ("full", "rerun"):
        b.run("sbx backup", what, [sbx, "backup", "--stack", str(stack), "--repo", str(repo)])
    expect = tree_size(stack)
    argv = [sbx, "restore", "latest", "--to", str(b.work / "r-sbx"), "--repo", str(repo)]
    b.run("sbx backup", "restore", argv)
    b.results["sbx backup"]["repo_mib"] = tree_size(repo)[1] / MiB
    check_restored("sbx", b.work / "r-sbx", expect)
    # the data path: engine only, timed inside its process (imports excluded)
    repo = b.work / "repo-engine"
    for what in ("full", "rerun", "restore"):
        target = b.work / "r-engine" if what == "restore" else stack
        out = b.run(
            "sbx engine", what, [sys.executable, "-c", ENGINE, what, str(target), str(repo)]
        )
        b.results["sbx engine"][what] = round(float(out.split()[-1]), 2)
    b.results["sbx engine"]["repo_mib"] = tree_size(repo)[1] / MiB
    check_restored("sbx engine", b.work / "r-engine", expect)
    return expect


def bench_peers(b: Bench, stack: Path, expect: tuple[int, int]) -> None:
    w, name = b.work, stack.name
    for what in ("full", "rerun"):  # cp and tar have no incremental mode: a re-run copies again
        shutil.rmtree(w / "cp", ignore_errors=True)
        b.run("cp -a", what, ["cp", "-a", str(stack), str(w / "cp")])
        b.run("tar czf", what, ["tar", "czf", str(w / "bk.tar.gz"), "-C", str(stack.parent), name])
    b.results["cp -a"]["repo_mib"] = tree_size(w / "cp")[1] / MiB
    b.results["tar czf"]["repo_mib"] = (w / "bk.tar.gz").stat().st_size / MiB
    b.run("cp -a", "restore", ["cp", "-a", str(w / "cp"), str(w / "r-cp")])
    check_restored("cp -a", w / "r-cp", expect)
    (w / "r-tar").mkdir()
    b.run("tar czf", "restore", ["tar", "xzf", str(w / "bk.tar.gz"), "-C", str(w / "r-tar")])
    check_restored("tar", w / "r-tar", expect)
    if shutil.which("borg"):
        repo = str(w / "repo-borg")
        subprocess.run(["borg", "init", "--encryption", "none", repo], env=b.env, check=True)
        for i, what in enumerate(("full", "rerun")):
            argv = ["borg", "create", "--compression", "lz4", f"{repo}::a{i}", name]
            b.run("borg", what, argv, cwd=stack.parent)
        (w / "r-borg").mkdir()
        b.run("borg", "restore", ["borg", "extract", f"{repo}::a1"], cwd=w / "r-borg")
        b.results["borg"]["repo_mib"] = tree_size(w / "repo-borg")[1] / MiB
        check_restored("borg", w / "r-borg", expect)
    else:
        print("borg not found: apt-get install borgbackup (skipped)")
    if shutil.which("restic"):
        repo = str(w / "repo-restic")
        subprocess.run(["restic", "-r", repo, "init", "-q"], env=b.env, check=True)
        for what in ("full", "rerun"):
            b.run("restic", what, ["restic", "-r", repo, "backup", "-q", name], cwd=stack.parent)
        argv = ["restic", "-r", repo, "restore", "latest", "-q", "--target", str(w / "r-restic")]
        b.run("restic", "restore", argv)
        b.results["restic"]["repo_mib"] = tree_size(w / "repo-restic")[1] / MiB
        check_restored("restic", w / "r-restic", expect)
    else:
        print("restic not found: apt-get install restic (skipped)")


def task_runs(api_url: str) -> list[tuple[str, int]]:
    """(stack, task runs) for each backup-stack flow run on the local server, oldest first."""
    os.environ["PREFECT_API_URL"] = api_url
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flows = FlowFilter(name=FlowFilterName(any_=["backup-stack"]))
        runs = client.read_flow_runs(flow_filter=flows, sort=FlowRunSort.START_TIME_ASC)
        return [
            (
                str(r.parameters.get("stack")),
                len(
                    client.read_task_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id]))
                    )
                ),
            )
            for r in runs
        ]


def report(res: dict[str, dict[str, Any]], targets: list[str]) -> str:
    head = "| tool | full backup s | unchanged re-run s | restore s | peak RSS MiB | repo MiB |"
    rows = [head, "|---|---:|---:|---:|---:|---:|"]
    for tool, r in res.items():
        cells = [r.get(k) for k in ("full", "rerun", "restore", "rss_mib", "repo_mib")]
        rows.append(
            f"| {tool} | " + " | ".join("–" if c is None else f"{c:.1f}" for c in cells) + " |"
        )
    return "\n".join(rows) + "\n\n" + "\n".join(targets)


def check(res: dict[str, dict[str, Any]]) -> list[str]:
    cmd, eng = res["sbx backup"], res["sbx engine"]
    cp, borg, restic = res["cp -a"], res.get("borg"), res.get("restic")
    lines: list[tuple[str, float, float]] = [
        ("full backup ≤ 2× cp -a (sbx backup)", cmd["full"], 2 * cp["full"]),
        ("full backup ≤ 2× cp -a (data path)", eng["full"], 2 * cp["full"]),
    ]
    if borg:
        lines += [
            ("full backup ≤ 0.5× borg (sbx backup)", cmd["full"], 0.5 * borg["full"]),
            ("full backup ≤ 0.5× borg (data path)", eng["full"], 0.5 * borg["full"]),
        ]
    if restic:
        lines += [
            ("unchanged re-run ≤ restic (data path)", eng["rerun"], restic["rerun"]),
            ("unchanged re-run ≤ restic + 5 s (sbx backup)", cmd["rerun"], restic["rerun"] + 5),
            ("restore ≤ 0.5× restic (sbx restore)", cmd["restore"], 0.5 * restic["restore"]),
            ("restore ≤ 0.5× restic (data path)", eng["restore"], 0.5 * restic["restore"]),
        ]
    lines.append(("peak RSS ≤ 300 MiB (sbx commands)", cmd["rss_mib"], 300.0))
    lines.append(("peak RSS ≤ 300 MiB (data path)", eng["rss_mib"], 300.0))
    return [
        f"{'PASS' if got <= limit else 'FAIL'}  {name}: {got:.1f} vs limit {limit:.1f}"
        for name, got, limit in lines
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--small-scale", type=float, default=0.05, help="for the task-run count")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new dir under /tmp")
    ap.add_argument("--keep", action="store_true", help="keep trees and repositories")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = ap.parse_args()
    make_stack = args.shared / "bench" / "make_stack.py"
    if not make_stack.is_file():
        raise SystemExit(f"{make_stack} is missing: pass --shared DIR (the folder with bench/)")
    sbx = shutil.which("sbx", path=str(Path(sys.executable).parent)) or shutil.which("sbx")
    if sbx is None:
        raise SystemExit("sbx is not installed: run `uv sync` first")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(work)
    stack, small = work / "main" / STACK, work / "small" / STACK
    try:
        for tree, scale in ((stack, args.scale), (small, args.small_scale)):
            argv = [sys.executable, str(make_stack), str(tree), "--scale", str(scale)]
            subprocess.run([*argv, "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sbx, "server", "start"], env=b.env, check=True)
        print(f"tree: {tree_size(stack)[1] / MiB:.0f} MiB at scale {args.scale}, under {work}")
        argv = [sbx, "backup", "--stack", str(small), "--repo", str(work / "repo-small")]
        subprocess.run(argv, env=b.env, check=True, capture_output=True)
        expect = bench_sbx(b, sbx, stack)
        bench_peers(b, stack, expect)
        api = f"http://127.0.0.1:{b.env['SBX_SERVER_PORT']}/api"
        counts = task_runs(api)
    finally:
        subprocess.run([sbx, "server", "stop"], env=b.env, check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    targets = check(b.results)
    print("\n" + report(b.results, targets))
    print("\ntask runs per `sbx backup` flow run:")
    for tree_dir, n in counts:
        print(f"  {n:3d}  {tree_dir} ({'small' if '/small/' in tree_dir else 'main'} tree)")
    if args.json:
        raw = {"scale": args.scale, "results": b.results, "targets": targets, "task_runs": counts}
        args.json.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
