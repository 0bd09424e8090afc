"""examples/stack/seed_qdrant.py (run by up.sh): a collection with one point per paragraph of
notes/*.md, through Qdrant's API with the stack's key; a second run leaves it alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bed.qdrant_seed import qdrant_client

from .conftest import IMAGES, StartStandin

EXAMPLE = IMAGES.parent


def test_the_seed_writes_the_notes_once_through_the_api_with_the_key(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    for folder in ("notes", "env"):
        shutil.copytree(EXAMPLE / folder, stack / folder)
    key = "example-qdrant-key-change-me"
    assert f"QDRANT__SERVICE__API_KEY={key}" in (stack / "env/qdrant.env").read_text()
    qdrant = start_standin(
        "qdrant",
        {
            "QDRANT__SERVICE__API_KEY": key,
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
        },
    )

    def seed() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(EXAMPLE / "seed_qdrant.py"), str(stack)],
            env={"SBX_QDRANT_PORT": str(qdrant.port), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    paragraphs = sum(
        1
        for note in (stack / "notes").glob("*.md")
        for p in note.read_text().split("\n\n")
        if p.strip()
    )
    done = seed()
    assert done.returncode == 0, done.stderr
    assert f"seeded with {paragraphs} points" in done.stdout
    client = qdrant_client(qdrant.url, key)
    assert client.count("example-notes").count == paragraphs > 2
    assert seed().stdout.strip() == "qdrant: example-notes is already there"
    assert client.count("example-notes").count == paragraphs
    client.close()
    # without the key Qdrant refuses, and the seed says so
    (stack / "env/qdrant.env").write_text("")
    shutil.rmtree(tmp_path / "storage", ignore_errors=True)
    refused = seed()
    assert refused.returncode == 1 and "refused the seed" in refused.stderr
