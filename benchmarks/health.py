"""Benchmark: a full round of health checks against the slowest single check.

    uv run python benchmarks/health.py [--rounds 5] [--stack DIR] [--json OUT]

Without --stack, a copy of examples/stack is brought up on free loopback ports through the test
bed (tests/bed: stand-in images, its own compose project) and removed afterwards. Each round
first times every check alone, one after the other, then the full round (every family
concurrently, as the flow runs them, without Prefect's task bookkeeping). The target (issue #5):
full round ≤ slowest single check + 0.5 s. Reading the context (one `docker compose config`, one
container listing) happens once per run and is reported separately.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from blocks.config import load_config  # noqa: E402
from tasks.health.checks import run_any  # noqa: E402
from tasks.health.context import read_context  # noqa: E402
from tasks.health.round import FAMILIES, plan_family, run_round  # noqa: E402


@contextlib.contextmanager
def bench_stack(path: Path | None, work: Path) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    from bed.images import build_images
    from bed.stack import prepare_stack, start_stack, stop_stack

    build_images()
    stack = prepare_stack(work / "stack", f"bench{uuid.uuid4().hex[:6]}")
    (stack.path / "sbx.toml").write_text(f'[repository]\nlocation = "{work / "repo"}"\n')
    start_stack(stack)
    try:
        yield stack.path
    finally:
        stop_stack(stack)


def singles(config: Any, ctx: Any, repo: str) -> dict[str, float]:
    """Seconds of every check run alone, one after the other."""
    took = {}
    for family in FAMILIES:
        with contextlib.ExitStack() as stack:
            for check in plan_family(family, config, ctx, repo, stack):
                started = time.perf_counter()
                for result in run_any(check):  # the GPU family: one read, a check per GPU
                    took[result.id] = time.perf_counter() - started
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stack", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix="sbx-bench-health-") as tmp,
        bench_stack(args.stack, Path(tmp)) as stack_dir,
    ):
        config = load_config(stack_dir)
        repo = config.repository.location
        started = time.perf_counter()
        ctx = read_context(config)
        context_s = time.perf_counter() - started
        rows = []
        for _ in range(args.rounds):
            single = singles(config, ctx, repo)
            started = time.perf_counter()
            results = run_round(config, ctx, repo)
            full = time.perf_counter() - started
            slowest = max(single, key=lambda k: single[k])
            rows.append(
                {
                    "full_s": full,
                    "slowest_id": slowest,
                    "slowest_s": single[slowest],
                    "sum_s": sum(single.values()),
                    "checks": len(single),
                    "failing": [r.id for r in results if r.state == "failing"],
                }
            )
    full = statistics.median(r["full_s"] for r in rows)
    slowest = statistics.median(r["slowest_s"] for r in rows)
    sequential = statistics.median(r["sum_s"] for r in rows)
    verdict = "PASS" if all(r["full_s"] <= r["slowest_s"] + 0.5 for r in rows) else "FAIL"
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {platform.machine()}, "
        f"{platform.processor() or ''} python {platform.python_version()}"
    )
    print(
        f"context read once: {context_s:.2f} s; {rows[0]['checks']} checks; "
        f"{args.rounds} rounds (median)"
    )
    print("| round | full round s | slowest single s (check) | all checks one by one s |")
    print("|---:|---:|---:|---:|")
    for i, r in enumerate(rows, 1):
        print(
            f"| {i} | {r['full_s']:.2f} | {r['slowest_s']:.2f} ({r['slowest_id']}) "
            f"| {r['sum_s']:.2f} |"
        )
    print(
        f"{verdict}  full round ≤ slowest single check + 0.5 s (every round): median "
        f"{full:.2f} vs {slowest:.2f} + 0.5; one by one {sequential:.2f} s"
    )
    failing = sorted({f for r in rows for f in r["failing"]})
    if failing:
        print(f"note: failing checks during the benchmark: {', '.join(failing)}")
    if args.json:
        args.json.write_text(json.dumps({"context_s": context_s, "rounds": rows}, indent=1))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
