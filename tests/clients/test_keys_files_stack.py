"""A Qdrant key that lives only in a mounted config/production.yaml (keys_files.py), end to end.

One stand-in container (its compose file sets no QDRANT__SERVICE__API_KEY) whose key is in
``./qdrant-config/production.yaml``, bind-mounted where the image reads it; the stand-in
enforces it (401 without). ``sbx backup --part qdrant`` goes through the snapshot API and
``sbx health`` lists the collections: both only pass when sbx read the key from the file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bed.engine import LABEL
from bed.services import free_ports
from bed.stack import compose_command
from faults.input_helpers import invoke

KEY = "key-only-in-production-yaml"
COMPOSE = """\
services:
  qdrant:
    image: ${{QDRANT_IMAGE}}
    pull_policy: never
    labels: {{{label}: "{run_id}"}}
    ports: ["127.0.0.1:{port}:6333"]
    volumes:
      - ./data/qdrant/storage:/qdrant/storage
      - ./data/qdrant/snapshots:/qdrant/snapshots
      - ./qdrant-config/production.yaml:/qdrant/config/production.yaml:ro
networks:
  default:
    labels: {{{label}: "{run_id}"}}
"""
# only qdrant is in this stack
ONLY_QDRANT = "".join(
    f"[services.{name}]\nenabled = false\n"
    for name in ("worker", "watchdog", "open-webui", "proxy", "internet-research")
)


@pytest.fixture
def keyed_stack(tmp_path: Path, run_id: str, standin_images: dict[str, str]) -> Iterator[Path]:
    stack = tmp_path / "stack"
    (stack / "qdrant-config").mkdir(parents=True)
    (stack / "qdrant-config" / "production.yaml").write_text(
        f"service:\n  # the box's key, nowhere else\n  api_key: {KEY}\n"
    )
    port = free_ports(1)[0]
    (stack / "docker-compose.yml").write_text(COMPOSE.format(label=LABEL, run_id=run_id, port=port))
    (stack / ".env").write_text(
        f"COMPOSE_PROJECT_NAME=sbxt-{run_id}-qkeyfile\nQDRANT_IMAGE={standin_images['qdrant']}\n"
    )
    (stack / "sbx.toml").write_text(ONLY_QDRANT)
    compose = compose_command()
    try:
        subprocess.run([*compose, "up", "-d", "--wait"], cwd=stack, check=True, capture_output=True)
        url = f"http://127.0.0.1:{port}/collections"
        assert httpx.get(url).status_code == 401  # the stand-in reads the mounted file
        vectors = {"vectors": {"size": 2, "distance": "Dot"}}
        made = httpx.put(f"{url}/docs", json=vectors, headers={"api-key": KEY})
        assert made.is_success, made.text
        yield stack
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "1"], cwd=stack, capture_output=True)


def test_sbx_backs_up_and_checks_qdrant_with_the_key_from_its_config_file(
    keyed_stack: Path, prefect_server: str, tmp_path: Path
) -> None:
    env = {"PREFECT_API_URL": prefect_server, "SBX_HOME": str(tmp_path / "home")}
    at = ["--stack", str(keyed_stack), "--repo", str(tmp_path / "repo")]
    backup = invoke(["backup", *at, "--part", "qdrant", "--json"], env)
    assert backup.exception is None and backup.exit_code == 0, backup.stdout + backup.stderr
    health = invoke(["health", *at, "--json", "--no-alerts"], env)
    checks = {c["id"]: c for c in json.loads(health.stdout)["checks"]}
    assert checks["service:qdrant"]["state"] == "ok", checks["service:qdrant"]
