#!/usr/bin/env python3
"""Generate a synthetic "sealed box" stack directory for the benchmarks (benchmarks/run.py).

The shape follows a real box: a compose file and env files, large immutable
model shards (incompressible), a Qdrant storage tree with many segment files,
an Open WebUI SQLite database with uploads, compressible logs, notes and agent
configs. Content is deterministic for a given --seed, so two runs with the same
arguments produce byte-identical trees.

    python3 benchmarks/make_stack.py OUT_DIR [--scale 1.0] [--seed 7]

--scale 1.0 is about 2.3 GiB (2 GiB of model shards); 0.05 is a quick ~120 MiB.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from pathlib import Path

MiB = 1 << 20

COMPOSE = """services:
  worker:
    image: vllm/vllm-openai:v0.6.3
    command: --model /models/{model} --max-model-len 8192
    ports: ["127.0.0.1:8000:8000"]
    volumes: ["./data/models:/models:ro"]
    env_file: [env/stack.env]
  watchdog:
    image: vllm/vllm-openai:v0.6.3
    command: --model /models/{guard} --max-model-len 4096
    ports: ["127.0.0.1:8100:8000"]
    volumes: ["./data/models:/models:ro"]
  qdrant:
    image: qdrant/qdrant:v1.12.1
    ports: ["127.0.0.1:6333:6333", "127.0.0.1:6334:6334"]
    volumes: ["./data/qdrant:/qdrant/storage"]
  open-webui:
    image: ghcr.io/open-webui/open-webui:v0.3.35
    ports: ["127.0.0.1:3000:8080"]
    volumes: ["./data/open-webui:/app/backend/data"]
"""


def text_blob(rng: random.Random, size: int, vocab: list[str]) -> bytes:
    """Compressible, log-like text of about `size` bytes."""
    lines, total = [], 0
    while total < size:
        line = (
            f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:00Z "
            + " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 18)))
        )
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def rand(rng: random.Random, size: int) -> bytes:
    """Incompressible bytes, generated in chunks (randbytes caps near 256 MiB)."""
    return b"".join(rng.randbytes(min(16 * MiB, size - i)) for i in range(0, size, 16 * MiB))


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_stack(out: Path, scale: float, seed: int) -> dict[str, int]:
    rng = random.Random(seed)  # noqa: S311 (deterministic synthetic data, not secrets)
    vocab = [f"w{i}" for i in range(400)] + [
        "GET",
        "POST",
        "/v1/chat/completions",
        "200",
        "429",
        "info",
        "warn",
    ]
    sizes: dict[str, int] = {}

    def put(part: str, rel: str, data: bytes) -> None:
        write(out / rel, data)
        sizes[part] = sizes.get(part, 0) + len(data)

    model, guard = "acme/sealed-8b-awq", "acme/guard-1b"
    put("configs", "docker-compose.yml", COMPOSE.format(model=model, guard=guard).encode())
    put(
        "configs",
        "env/stack.env",
        f"WORKER_MODEL={model}\nWORKER_QUANT=awq\nWATCHDOG_MODEL={guard}\n".encode(),
    )
    put(
        "configs",
        "env/secrets.env",
        f"API_KEYS=sk-{rng.randbytes(16).hex()},sk-{rng.randbytes(16).hex()}\n".encode(),
    )
    put(
        "agent-configs",
        "agents/feeds.yml",
        b"feeds:\n"
        + b"".join(f"  - https://feeds.example.org/{i}.xml\n".encode() for i in range(40)),
    )
    put(
        "agent-configs",
        "agents/allowlist.txt",
        b"".join(f"docs{i}.example.org\n".encode() for i in range(60)),
    )

    # Model shards: large, immutable, incompressible.
    shard = max(1, int(512 * MiB * scale))
    for name, shards in ((model, 3), (guard, 1)):
        for i in range(shards):
            put(
                "models",
                f"data/models/{name}/model-{i + 1:05d}-of-{shards:05d}.safetensors",
                rand(rng, shard),
            )
        put(
            "models",
            f"data/models/{name}/config.json",
            json.dumps({"arch": "llama", "layers": 32, "seed": seed}, indent=2).encode(),
        )
        put(
            "models",
            f"data/models/{name}/tokenizer.json",
            json.dumps({"vocab": {w: i for i, w in enumerate(vocab * 20)}}).encode(),
        )

    # Qdrant storage: many segment files; vectors incompressible, payload index compressible.
    n_segments = max(2, int(40 * scale))
    for c in ("notes", "intel"):
        for s in range(n_segments):
            seg = f"data/qdrant/collections/{c}/0/segments/{rng.randbytes(8).hex()}"
            put(
                "qdrant",
                f"{seg}/vector_storage/vectors/chunk_0.mmap",
                rand(rng, max(4096, int(rng.randint(1, 4) * MiB * scale * 2))),
            )
            put(
                "qdrant",
                f"{seg}/payload_index/text.idx",
                text_blob(rng, max(1024, int(256 * 1024 * scale * 4)), vocab),
            )
            put(
                "qdrant",
                f"{seg}/segment.json",
                json.dumps({"version": s, "collection": c}).encode(),
            )
            put("qdrant", f"{seg}/version.info", str(s).encode())
        put(
            "qdrant",
            f"data/qdrant/collections/{c}/config.json",
            json.dumps({"vectors": {"size": 768, "distance": "Cosine"}}).encode(),
        )

    # Open WebUI: a real SQLite database plus uploads.
    db = out / "data/open-webui/webui.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.execute("create table chat (id integer primary key, user text, title text, body text)")
    rows = max(100, int(20000 * scale))
    con.executemany(
        "insert into chat (user, title, body) values (?, ?, ?)",
        (
            (f"user{rng.randint(1, 20)}", f"chat {i}", text_blob(rng, 600, vocab).decode())
            for i in range(rows)
        ),
    )
    con.commit()
    con.close()
    sizes["open-webui"] = db.stat().st_size
    for i in range(max(5, int(120 * scale))):
        put(
            "open-webui",
            f"data/open-webui/uploads/{i:04d}-report.pdf",
            rand(rng, rng.randint(20_000, 400_000)),
        )

    # Logs: large and compressible.
    for svc in ("proxy", "worker", "watchdog", "qdrant", "agents"):
        for day in range(3):
            put(
                "logs",
                f"logs/{svc}/{svc}.log{'' if day == 0 else '.' + str(day)}",
                text_blob(rng, max(4096, int(24 * MiB * scale)), vocab),
            )

    # Notes / ingestion sources: many small markdown files.
    for i in range(max(20, int(1500 * scale))):
        put(
            "notes",
            f"notes/{i // 100:02d}/note-{i:05d}.md",
            text_blob(rng, rng.randint(500, 12_000), vocab),
        )
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"refusing to write into non-empty {args.out}")
    sizes = make_stack(args.out, args.scale, args.seed)
    total = sum(sizes.values())
    for part, n in sorted(sizes.items()):
        print(f"{part:14s} {n / MiB:10.1f} MiB")
    print(f"{'total':14s} {total / MiB:10.1f} MiB")


if __name__ == "__main__":
    main()
