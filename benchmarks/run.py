"""Benchmark sbx's backup and restore against cp -a, tar czf, borg and restic.

    uv run python benchmarks/run.py --scale 1.0 [--repeat 3] [--restore-cache warm|cold]
                                    [--json OUT] [--keep]

Generates a synthetic stack with benchmarks/make_stack.py, then times, per tool: a full
backup (into a new repository), an unchanged re-run, a restore (into an empty directory), the
peak RSS of each command, and the repository size. sbx is measured twice: the data path (the
repository engine alone, every default part a plain tree) and the whole `sbx backup` /
`sbx restore` command with sbx's local Prefect server already running.

Every tool's sequence runs --repeat times (tar czf once: it takes minutes and no target depends
on it) and the median of each step is reported. Before each timed step the file systems are
synced and the machine left idle for 5 s (untimed), so no step pays for the previous one's
write-back or gains from the memory it just freed. The tree is warm (just written, fits in
RAM). Before each restore the repository is read once, so every tool restores from a warm
cache — sbx's backup drops its repository's pages after writing on purpose — or, with
--restore-cache cold (root only), the page cache is dropped, as for a restore long after its
backup. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
# seconds between steps: the balloon's free-page reporting hands freed memory back to the host
# after ~2 s; a step that started sooner found recycled pages and ran up to 3x faster
SETTLE_S = 5.0
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
    def __init__(self, work: Path, restore_cache: str) -> None:
        self.work = work
        self.restore_cache = restore_cache
        self.env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        self.env |= {
            "SBX_HOME": str(work / "sbx-home"),
            "SBX_SERVER_PORT": str(free_port()),
            "RESTIC_PASSWORD": "benchmark",
            "RESTIC_CACHE_DIR": str(work / "restic-cache"),
            "BORG_BASE_DIR": str(work / "borg-home"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        }
        # tool -> step -> one value per repetition (seconds, MiB)
        self.results: dict[str, dict[str, list[float]]] = {}

    def run(self, tool: str, what: str, argv: list[str], cwd: Path | None = None) -> str:
        """Run argv in its own wrapper process; record wall seconds and peak RSS."""
        # the previous step's write-back is not this step's time, and memory freed just before
        # (a deleted tree) has gone back to the host for every step alike (module docstring)
        os.sync()
        time.sleep(SETTLE_S)
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
        with log.open("a", encoding="utf-8") as handle:
            handle.write(p.stderr)
        *lines, last = p.stdout.rstrip("\n").split("\n")
        m = json.loads(last)
        if m["rc"] != 0:
            raise SystemExit(f"{tool} {what} failed ({m['rc']}): {' '.join(argv)}\n{p.stderr}")
        self.record(tool, what, m["wall"])
        self.record(tool, "rss_mib", m["rss_kib"] / 1024)
        print(f"  {tool:12s} {what:8s} {m['wall']:7.2f} s  {m['rss_kib'] / 1024:6.0f} MiB")
        return "\n".join(lines)

    def record(self, tool: str, what: str, value: float) -> None:
        self.results.setdefault(tool, {}).setdefault(what, []).append(value)

    def before_restore(self, repo: Path) -> None:
        """Every tool restores from the same cache state: its repository read once (warm),
        or nothing cached at all (cold)."""
        os.sync()
        if self.restore_cache == "cold":
            Path("/proc/sys/vm/drop_caches").write_text("3\n", encoding="ascii")
            return
        files = [repo] if repo.is_file() else [Path(r, n) for r, _, ns in os.walk(repo) for n in ns]
        for path in files:
            with path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass

    def summary(self) -> dict[str, dict[str, float]]:
        """The median of each step (peak RSS: the largest seen)."""
        return {
            tool: {
                what: max(values) if what == "rss_mib" else statistics.median(values)
                for what, values in steps.items()
            }
            for tool, steps in self.results.items()
        }


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


def fresh(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def bench_sbx(b: Bench, sbx: str, stack: Path, expect: tuple[int, int]) -> None:
    """The whole command, then the data path: full, re-run, restore, each into a new repo."""
    repo, target = b.work / "repo-sbx", b.work / "r-sbx"
    fresh(repo)
    for what in ("full", "rerun"):
        b.run("sbx backup", what, [sbx, "backup", "--stack", str(stack), "--repo", str(repo)])
    b.before_restore(repo)
    b.run(
        "sbx backup",
        "restore",
        [sbx, "restore", "latest", "--to", str(target), "--repo", str(repo)],
    )
    b.record("sbx backup", "repo_mib", tree_size(repo)[1] / MiB)
    check_restored("sbx", target, expect)
    # the data path: engine only, timed inside its process (imports excluded)
    repo, target = b.work / "repo-engine", b.work / "r-engine"
    fresh(repo)
    for what in ("full", "rerun", "restore"):
        if what == "restore":
            b.before_restore(repo)
        src = target if what == "restore" else stack
        out = b.run("sbx engine", what, [sys.executable, "-c", ENGINE, what, str(src), str(repo)])
        b.results["sbx engine"][what][-1] = float(out.split()[-1])
    b.record("sbx engine", "repo_mib", tree_size(repo)[1] / MiB)
    check_restored("sbx engine", target, expect)


def bench_copy(b: Bench, stack: Path, expect: tuple[int, int], with_tar: bool) -> None:
    """cp -a and tar czf: no incremental mode, so a re-run copies everything again."""
    w, name = b.work, stack.name
    for what in ("full", "rerun"):
        fresh(w / "cp")
        b.run("cp -a", what, ["cp", "-a", str(stack), str(w / "cp")])
    b.record("cp -a", "repo_mib", tree_size(w / "cp")[1] / MiB)
    b.before_restore(w / "cp")
    b.run("cp -a", "restore", ["cp", "-a", str(w / "cp"), str(w / "r-cp")])
    check_restored("cp -a", w / "r-cp", expect)
    if not with_tar:
        return
    archive = w / "bk.tar.gz"
    for what in ("full", "rerun"):
        b.run("tar czf", what, ["tar", "czf", str(archive), "-C", str(stack.parent), name])
    b.record("tar czf", "repo_mib", archive.stat().st_size / MiB)
    (w / "r-tar").mkdir()
    b.before_restore(archive)
    b.run("tar czf", "restore", ["tar", "xzf", str(archive), "-C", str(w / "r-tar")])
    check_restored("tar", w / "r-tar", expect)


def bench_borg(b: Bench, stack: Path, expect: tuple[int, int]) -> None:
    repo, target = b.work / "repo-borg", b.work / "r-borg"
    fresh(repo)
    subprocess.run(["borg", "init", "--encryption", "none", str(repo)], env=b.env, check=True)
    for i, what in enumerate(("full", "rerun")):
        argv = ["borg", "create", "--compression", "lz4", f"{repo}::a{i}", stack.name]
        b.run("borg", what, argv, cwd=stack.parent)
    target.mkdir()
    b.before_restore(repo)
    b.run("borg", "restore", ["borg", "extract", f"{repo}::a1"], cwd=target)
    b.record("borg", "repo_mib", tree_size(repo)[1] / MiB)
    check_restored("borg", target, expect)


def bench_restic(b: Bench, stack: Path, expect: tuple[int, int]) -> None:
    repo, target = b.work / "repo-restic", b.work / "r-restic"
    fresh(repo, b.work / "restic-cache")
    subprocess.run(["restic", "-r", str(repo), "init", "-q"], env=b.env, check=True)
    for what in ("full", "rerun"):
        b.run(
            "restic",
            what,
            ["restic", "-r", str(repo), "backup", "-q", stack.name],
            cwd=stack.parent,
        )
    b.before_restore(repo)
    argv = ["restic", "-r", str(repo), "restore", "latest", "-q", "--target", str(target)]
    b.run("restic", "restore", argv)
    b.record("restic", "repo_mib", tree_size(repo)[1] / MiB)
    check_restored("restic", target, expect)


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


def report(
    medians: dict[str, dict[str, float]],
    runs: dict[str, dict[str, list[float]]],
    targets: list[str],
) -> str:
    """Medians, with each step's range (min–max) over the repetitions."""
    head = (
        "| tool | runs | full backup s | unchanged re-run s | restore s | peak RSS MiB | repo MiB |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for tool, r in medians.items():
        cells = []
        for key in ("full", "rerun", "restore", "rss_mib", "repo_mib"):
            values = runs[tool].get(key, [])
            if not values:
                cells.append("–")
            elif len(values) > 1 and key in ("full", "rerun", "restore"):
                cells.append(f"{r[key]:.1f} ({min(values):.1f}–{max(values):.1f})")
            else:
                cells.append(f"{r[key]:.0f}" if key.endswith("mib") else f"{r[key]:.1f}")
        runs_n = len(runs[tool].get("full", []))
        rows.append(f"| {tool} | {runs_n} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n\n" + "\n".join(targets)


def check(res: dict[str, dict[str, float]]) -> list[str]:
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


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--small-scale", type=float, default=0.05, help="for the task-run count")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each tool; medians reported")
    ap.add_argument("--restore-cache", choices=("warm", "cold"), default="warm")
    ap.add_argument("--no-tar", action="store_true", help="skip tar czf (minutes per run)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new dir under /tmp")
    ap.add_argument("--keep", action="store_true", help="keep trees and repositories")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = ap.parse_args()
    if args.restore_cache == "cold" and os.geteuid() != 0:
        raise SystemExit("--restore-cache cold drops the page cache: run it as root")
    return args


def prepare(b: Bench, sbx: str, args: argparse.Namespace) -> tuple[Path, tuple[int, int]]:
    """Both trees, the local Prefect server, the small tree's backup (for the task-run count)."""
    stack, small = b.work / "main" / STACK, b.work / "small" / STACK
    for tree, scale in ((stack, args.scale), (small, args.small_scale)):
        argv = [sys.executable, str(Path(__file__).with_name("make_stack.py")), str(tree)]
        argv += ["--scale", str(scale), "--seed", str(args.seed)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sbx, "server", "start"], env=b.env, check=True)
    print(f"tree: {tree_size(stack)[1] / MiB:.0f} MiB at scale {args.scale}, under {b.work}")
    # the first backup of a tree writes data/models/*/SHA256SUMS: from then on every run (and
    # every tool) sees the same tree, and sbx's full backups check those sums
    for tree, repo in ((small, "repo-small"), (stack, "repo-first")):
        argv = [sbx, "backup", "--stack", str(tree), "--repo", str(b.work / repo)]
        subprocess.run(argv, env=b.env, check=True, capture_output=True)
    fresh(b.work / "repo-first")
    return stack, tree_size(stack)


def main() -> None:
    args = parse_args()
    sbx = shutil.which("sbx", path=str(Path(sys.executable).parent)) or shutil.which("sbx")
    if sbx is None:
        raise SystemExit("sbx is not installed: run `uv sync` first")
    peers = {"borg": bench_borg, "restic": bench_restic}
    for tool in [t for t in peers if not shutil.which(t)]:
        print(f"{tool} not found: apt-get install {tool.replace('borg', 'borgbackup')} (skipped)")
        del peers[tool]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(work, args.restore_cache)
    try:
        stack, expect = prepare(b, sbx, args)
        for i in range(args.repeat):
            print(f"run {i + 1} of {args.repeat}")
            bench_sbx(b, sbx, stack, expect)
            bench_copy(b, stack, expect, with_tar=i == 0 and not args.no_tar)
            for run in peers.values():
                run(b, stack, expect)
        counts = task_runs(f"http://127.0.0.1:{b.env['SBX_SERVER_PORT']}/api")
    finally:
        subprocess.run([sbx, "server", "stop"], env=b.env, check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    medians = b.summary()
    targets = check(medians)
    print("\n" + report(medians, b.results, targets))
    print("\ntask runs per `sbx backup` flow run:")
    for tree_dir, n in counts:
        print(f"  {n:3d}  {tree_dir} ({'small' if '/small/' in tree_dir else 'main'} tree)")
    if args.json:
        raw = {
            "scale": args.scale,
            "repeat": args.repeat,
            "restore_cache": args.restore_cache,
            "medians": medians,
            "runs": b.results,
            "targets": targets,
            "task_runs": counts,
        }
        args.json.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
