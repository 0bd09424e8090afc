"""S3Storage against boto3's own transfer manager, on a local moto server (not a test).

    uv run python benchmarks/s3_put.py [--mib 256] [--rounds 2]

Times, for one file of --mib MiB of random bytes: boto3 ``upload_file`` (s3transfer defaults:
8 MiB parts, 10 threads) versus ``S3Storage.put`` of the open file (sbx defaults: 8 MiB parts,
8 workers, plus a SHA-256 of the whole stream and a HEAD first), then ``download_file`` versus
``S3Storage.open`` read to the end (single GET, checksum checked). moto runs in its own process;
on a busy 2-core machine the numbers are noisy and moto itself is the bottleneck, so read them
as "same order or not", not as S3 throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bed import S3Server, free_port, wait_until
from bed.services import http_status, stop_process

from blocks.config import OffboxConfig
from tasks.clients.s3.storage import connect

MiB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/moto-api/") == 200, timeout=60)
        server = S3Server(endpoint_url=url)
        os.environ.update({k: v for k, v in server.env().items() if k != "AWS_ENDPOINT_URL"})
        bucket = server.make_bucket("bench-s3")
        client = server.client()
        offbox = OffboxConfig(
            endpoint_url=url,
            region="us-east-1",
            part_size_mib=args.part_mib,
            part_workers=args.workers,
        )
        storage = connect(f"s3://{bucket}/sbx", offbox)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "blob"
            src.write_bytes(os.urandom(args.mib * MiB))
            times: dict[str, list[float]] = {}

            def timed(name: str, fn: object) -> None:
                start = time.perf_counter()
                fn()  # type: ignore[operator]
                times.setdefault(name, []).append(time.perf_counter() - start)

            for round_ in range(args.rounds):
                key = f"blob-{round_}"
                timed("boto3 upload_file", lambda: client.upload_file(str(src), bucket, key))  # noqa: B023
                with src.open("rb") as handle:
                    timed("S3Storage.put", lambda: storage.put(key, handle))  # noqa: B023
                timed(
                    "boto3 download_file",
                    lambda: client.download_file(bucket, key, str(Path(tmp) / "down")),  # noqa: B023
                )

                def read_all() -> None:
                    with storage.open(key) as stream:  # noqa: B023
                        while stream.read(8 * MiB):
                            pass

                timed("S3Storage.open+read", read_all)
        print(
            f"{args.mib} MiB, {args.rounds} rounds, sbx parts {args.part_mib} MiB x "
            f"{args.workers} workers, median MiB/s (moto on 127.0.0.1)"
        )
        for name, values in times.items():
            print(f"  {name:22} {args.mib / statistics.median(values):8.1f} MiB/s")
    finally:
        stop_process(moto)


if __name__ == "__main__":
    main()
