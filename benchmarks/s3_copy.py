"""Benchmark the off-box copy against boto3's upload_file of the same bytes, on a local moto.

    uv run python benchmarks/s3_copy.py [--mib 300] [--workers 8]

Makes a local repository holding --mib MiB of incompressible data (model-shard-like files, so
8 MiB chunk objects), starts moto's server on a free loopback port, then times, each into its
own fresh bucket:

- sbx copy engine, encrypted: ``replicate()`` into ``EncryptedStorage`` over ``S3Storage``
  (what ``sbx copy`` does, without the Prefect flow around it);
- sbx copy engine, plaintext: the same into ``S3Storage`` directly (the cost of age);
- boto3 upload_file, per object: each local object file uploaded with ``upload_file``
  (default TransferConfig), one after the other;
- boto3 upload_file, one file: all the bytes as one file (multipart, 10 threads).

Prints a Markdown table (MiB/s over the repository's stored bytes). moto keeps everything in
memory: its process needs about 3× --mib of RAM.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3  # noqa: TID251 (a benchmark, measuring the SDK itself)
import pyrage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocks.config import SbxConfig  # noqa: E402
from sbx.repository import Repository  # noqa: E402
from sbx.repository.encrypted import EncryptedStorage  # noqa: E402
from sbx.repository.replicate import replicate  # noqa: E402
from sbx.repository.storage.local import LocalStorage  # noqa: E402
from tasks.repository import open_storage  # noqa: E402

MiB = 1 << 20


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"moto did not start; see {log}")


def _make_repo(work: Path, mib: int) -> Repository:
    tree = work / "stack" / "data" / "models" / "m"
    tree.mkdir(parents=True)
    left, index = mib, 0
    while left > 0:
        size = min(left, 64)
        (tree / f"shard-{index:03d}.safetensors").write_bytes(os.urandom(size * MiB))
        left, index = left - size, index + 1
    repo = Repository.open_or_init(LocalStorage(work / "repo", fsync=False))
    with repo.writer(command="benchmark") as writer:
        writer.begin_snapshot(previous=None, tags={}, stack_dir=work / "stack")
        with writer.part("models", "immutable") as part:
            part.add_tree(work / "stack" / "data" / "models", "data/models")
        writer.commit(box={})
    return repo


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbx-bench-s3-") as tmp:
        work = Path(tmp)
        repo = _make_repo(work, args.mib)
        files = sorted(p for p in (work / "repo" / "objects").rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)
        proc, endpoint = _start_moto(work / "moto.log")
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106
            AWS_DEFAULT_REGION="us-east-1",
        )
        client = boto3.client("s3")
        config = SbxConfig()
        identity = pyrage.x25519.Identity.generate()
        rows: list[tuple[str, float]] = []
        try:
            for n, (name, run) in enumerate(
                [
                    ("sbx copy engine, age-encrypted", "enc"),
                    ("sbx copy engine, plaintext", "plain"),
                    ("boto3 upload_file, per object", "per"),
                    ("boto3 upload_file, one file", "one"),
                ]
            ):
                bucket = f"bench-{n}"
                client.create_bucket(Bucket=bucket)
                if run in ("enc", "plain"):
                    inner = open_storage(f"s3://{bucket}/repo", config)
                    target = inner
                    if run == "enc":
                        target = EncryptedStorage.create(
                            inner,
                            repo.info,
                            recipients=[identity.to_public()],
                            identities=[identity],
                        )
                    seconds = _timed(
                        lambda t=target: replicate(repo.storage, t, workers=args.workers)
                    )
                elif run == "per":
                    seconds = _timed(
                        lambda b=bucket: [
                            client.upload_file(str(p), b, f"objects/{p.name}") for p in files
                        ]
                    )
                else:
                    joined = work / "joined.bin"
                    with joined.open("wb") as out:
                        for p in files:
                            out.write(p.read_bytes())
                    seconds = _timed(
                        lambda b=bucket, j=joined: client.upload_file(str(j), b, "all")
                    )
                    joined.unlink()
                rows.append((name, seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"\n{total / MiB:.0f} MiB in {len(files)} objects, workers={args.workers}\n")
    print("| method | seconds | MiB/s |\n|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {total / MiB / seconds:.0f} |")


if __name__ == "__main__":
    main()
