#!/usr/bin/env python3
"""Give the example's Qdrant a collection to count: ``example-notes``, one point per paragraph
of notes/*.md, written through Qdrant's REST API as an operator's ingestion would write it.

Upstream Qdrant starts empty and has no seeding of its own, so up.sh runs this once the stack is
up; it works the same against qdrant/qdrant and the stand-in. Idempotent: a collection that is
already there is left alone. The vectors are 4-dimensional placeholders derived from each
paragraph's hash (a real box's ingestion embeds the text with its model).

Usage: ``python3 seed_qdrant.py [STACK_DIR]``; the URL is http://127.0.0.1:$SBX_QDRANT_PORT
(6333), the key QDRANT__SERVICE__API_KEY from env/qdrant.env. Stdlib only (runs before any
virtual environment exists). Exit 0 when seeded or already there, 1 when Qdrant refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

COLLECTION = "example-notes"


def paragraphs(stack: Path) -> list[dict[str, object]]:
    points: list[dict[str, object]] = []
    for note in sorted((stack / "notes").glob("*.md")):
        for text in (p.strip() for p in note.read_text(encoding="utf-8").split("\n\n")):
            if text:
                digest = hashlib.sha256(text.encode()).digest()
                vector = [b / 255 + 0.01 for b in digest[:4]]
                payload = {"source": f"notes/{note.name}", "text": text[:500]}
                points.append({"id": len(points) + 1, "vector": vector, "payload": payload})
    return points


def api_key(stack: Path) -> str | None:
    env = stack / "env" / "qdrant.env"
    for line in env.read_text().splitlines() if env.is_file() else []:
        name, sep, value = line.partition("=")
        if sep and name.strip() == "QDRANT__SERVICE__API_KEY" and value.strip():
            return value.strip()
    return None


def call(url: str, method: str, key: str | None, body: object = None) -> int:
    """The HTTP status of one call; 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310  # http only
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def main(argv: list[str]) -> int:
    stack = Path(argv[0]) if argv else Path(__file__).resolve().parent
    base = f"http://127.0.0.1:{os.environ.get('SBX_QDRANT_PORT', '6333')}/collections/{COLLECTION}"
    key = api_key(stack)
    found = call(base, "GET", key)
    if found == 200:
        print(f"qdrant: {COLLECTION} is already there")
        return 0
    if found == 0:  # e.g. `./up.sh worker`: qdrant was not started
        print("qdrant: not answering, not seeded")
        return 0
    points = paragraphs(stack)
    created = call(base, "PUT", key, {"vectors": {"size": 4, "distance": "Cosine"}})
    upserted = call(f"{base}/points?wait=true", "PUT", key, {"points": points})
    if created != 200 or upserted != 200:
        print(f"qdrant refused the seed (create {created}, upsert {upserted})", file=sys.stderr)
        return 1
    print(f"qdrant: {COLLECTION} seeded with {len(points)} points")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
