"""Log rotation: how long sbx takes to rotate a big log, and what plain copytruncate loses.

    uv run python benchmarks/logs.py [--mib 100] [--seconds 5] [--rates 1000 20000] [--workdir DIR]

1. Rotation time of a ``--mib`` log of numbered lines per method and compression (copy,
   compress, fsync, read back, cut), on the work directory's filesystem.
2. Loss under a writer: tests/logs/writer.py appends ``--rates`` lines/s for ``--seconds`` while
   rotation runs every 0.1 s with a 16 KiB threshold, once with sbx's lossless method and once
   with logrotate-style copytruncate (copy, then truncate, nothing else); prints lines written,
   lines found, lines lost, rotations.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "logs")]


from blocks.config import LogsConfig  # noqa: E402
from tasks.logs.directory import rotate_directory  # noqa: E402
from tasks.logs.fs import filesystem_type, probe_methods  # noqa: E402
from tasks.logs.plan import rotated_files  # noqa: E402
from tasks.logs.rotate import open_rotated  # noqa: E402

NUMBER = re.compile(rb"(\d{9}) x+ (\d{9})")


def big_log(path: Path, mib: int) -> None:
    # a request log's shape: timestamps, ids and latencies vary, the words repeat
    rng = random.Random(7)  # noqa: S311 (synthetic data, not secrets)
    with path.open("wb") as out:
        n = 0
        while out.tell() < mib << 20:
            out.write(
                b"".join(
                    f"2026-11-27T00:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z "
                    f"INFO POST /v1/chat/completions {rng.choice((200, 200, 200, 429, 500))} "
                    f"{rng.randint(40, 9000)}ms req={rng.getrandbits(64):016x} "
                    f"tokens={rng.randint(1, 4096)}\n".encode()
                    for n in range(n, n + 10_000)
                )
            )
            n += 10_000


def time_rotation(work: Path, mib: int, method: str, compress: str) -> tuple[float, int]:
    stack = work / f"size-{method}-{compress}"
    (stack / "logs").mkdir(parents=True)
    live = stack / "logs" / "worker.log"
    big_log(live, mib)
    settings = LogsConfig(method=method, compress=compress)  # type: ignore[arg-type]
    start = time.perf_counter()
    report = rotate_directory(stack, stack / "logs", [live], settings, force=True)
    elapsed = time.perf_counter() - start
    result = report.files[0]
    assert result.action == "rotated", result
    shutil.rmtree(stack)
    return elapsed, result.compressed_bytes


def count_lines(live: Path) -> tuple[int, int]:
    """(numbered lines found, torn lines)."""
    found: set[int] = set()
    torn = 0
    for path in [p for _, p in rotated_files(live)] + [live]:
        with open_rotated(path) as stream:
            data = stream.read().lstrip(b"\0")
        for raw in data.splitlines():
            match = NUMBER.fullmatch(raw.lstrip(b"\0"))
            if match and match.group(1) == match.group(2):
                found.add(int(match.group(1)))
            elif raw.strip(b" \0"):
                torn += 1
    return len(found), torn


def under_writer(work: Path, method: str, seconds: float, rate: int) -> tuple[int, int, int, int]:
    stack = work / f"writer-{method}-{rate}"
    logs = stack / "logs"
    logs.mkdir(parents=True)
    live = logs / "worker.log"
    writer = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/logs/writer.py"), str(live), str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    settings = LogsConfig(max_size=16 << 10, keep=100_000, method=method)  # type: ignore[arg-type]
    rotations = 0
    while writer.poll() is None:
        time.sleep(0.1)
        if live.exists():
            report = rotate_directory(stack, logs, [live], settings)
            rotations += sum(f.action == "rotated" for f in report.files)
    written = int(writer.communicate()[0])
    found, torn = count_lines(live)
    return written, found, torn, rotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 20000])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-logs-", dir=args.workdir))
    try:
        methods = probe_methods(work)
        print(f"{work}: {filesystem_type(work)}, lossless methods {methods}\n")
        print(f"| method | compression | rotate {args.mib} MiB s | MiB/s | rotated MiB |")
        print("|---|---|---:|---:|---:|")
        for method in [*methods, "copytruncate"]:
            for compress in ("zstd", "gzip"):
                elapsed, size = time_rotation(work, args.mib, method, compress)
                print(
                    f"| {method} | {compress} | {elapsed:.2f} | {args.mib / elapsed:.0f} "
                    f"| {size / (1 << 20):.1f} |"
                )
        print(f"\nwriter for {args.seconds:g} s, rotation every 0.1 s (16 KiB threshold):\n")
        print("| method | lines/s | written | found | lost | torn | rotations |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for rate in args.rates:
            for method in [methods[0] if methods else "copytruncate", "copytruncate"]:
                written, found, torn, turns = under_writer(work, method, args.seconds, rate)
                print(
                    f"| {method} | {rate} | {written} | {found} | {written - found} | {torn} "
                    f"| {turns} |"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    main()
