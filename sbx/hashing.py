"""The sha256 of a file, streamed: what the drill, incident bundles and Qdrant uploads check
against recorded hashes (one place, below every floor that needs it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of ``path``'s content, read 1 MiB at a time (a model file is GiBs)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
