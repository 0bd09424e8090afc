"""Drill on one GPU (#19 deliverable 6), without Docker: which services are GPU services (from
the compose model, or [drill] config), and the check of their files by sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from blocks.config import DrillConfig
from sbx.errors import ConfigError
from sbx.repository import Repository, SnapshotManifest
from tasks.clients.compose import ComposeCli
from tasks.drill.gpu import HeldBack, HeldMount, gpu_reason, gpu_services, plan_held_back
from tasks.drill.held_back import check_held_back_files
from tasks.drill.report import DrillReport, drill_markdown, not_started

# every way a compose file gives a service a GPU, and one without
COMPOSE = """
services:
  reserved:
    image: x
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]
  by-capability:
    image: x
    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], count: all}]}}}
  gpus-all:
    image: x
    gpus: all
  gpus-listed:
    image: x
    gpus: [{driver: nvidia, device_ids: ["0"]}]
  runtime:
    image: x
    runtime: nvidia
  cpu-only:
    image: x
    deploy: {resources: {reservations: {memory: 1g}}}
    depends_on: [reserved]
"""


def compose_model(tmp_path: Path, text: str = COMPOSE) -> dict[str, Any]:
    """The model as `docker compose config --format json` gives it (the drill reads this)."""
    (tmp_path / "compose.yml").write_text(text)
    done = ComposeCli(tmp_path, project="t").run("config", "--format", "json")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_gpu_services_are_found_in_the_compose_model(tmp_path: Path) -> None:
    model = compose_model(tmp_path)
    reasons = {name: gpu_reason(spec) for name, spec in model["services"].items()}
    assert reasons.pop("cpu-only") is None
    assert all(reasons.values()), reasons
    assert "deploy.resources.reservations.devices" in str(reasons["reserved"])
    assert "gpus:" in str(reasons["gpus-all"]) and "runtime: nvidia" in str(reasons["runtime"])
    assert list(gpu_services(model, DrillConfig())) == sorted(reasons)


def test_the_drill_config_names_them_or_starts_them(tmp_path: Path) -> None:
    model = compose_model(tmp_path)
    named = gpu_services(model, DrillConfig(gpu_services=["cpu-only"]))
    assert named == {"cpu-only": "[drill] gpu_services names it"}
    assert gpu_services(model, DrillConfig(gpu_services=[])) == {}
    assert gpu_services(model, DrillConfig(start_gpu_services=True)) == {}
    with pytest.raises(ConfigError, match="wroker"):
        gpu_services(model, DrillConfig(gpu_services=["wroker"]))


def test_a_held_back_service_reads_its_mounts_and_has_consumers(tmp_path: Path) -> None:
    model = compose_model(
        tmp_path,
        "services:\n"
        "  worker:\n    image: x\n    gpus: all\n    expose: ['9000']\n"
        "    ports: ['127.0.0.1:8000:8000']\n"
        "    volumes: ['./data/models:/models:ro', 'cache:/root/.cache', '/srv/x:/x']\n"
        "  webui:\n    image: x\n    depends_on: [worker]\n"
        "volumes:\n  cache: {}\n",
    )
    stored = {"service worker: /root/.cache": "volumes/t_cache"}
    (held,) = plan_held_back(model, DrillConfig(), tmp_path, stored)
    assert held.service == "worker" and held.consumers == ["webui"]
    assert held.ports == [8000, 9000] and held.networks == ["default"]
    assert [(m.target, m.path) for m in held.mounts] == [
        ("/models", "data/models"),
        ("/root/.cache", "volumes/t_cache"),
        ("/x", None),  # outside the stack and not captured: the check says so
    ]


def models_snapshot(tmp_path: Path, damage: bool) -> tuple[Repository, SnapshotManifest, Path]:
    """A stack with one model dir and its SHA256SUMS, backed up (sha256 of every file); with
    ``damage`` the weights changed on the box after SHA256SUMS was written: the snapshot holds
    the damaged bytes, faithfully."""
    src = tmp_path / "box"
    model = src / "data" / "models" / "m1"
    model.mkdir(parents=True)
    weights = b"weights" * 1000
    (model / "model.safetensors").write_bytes(weights)
    (model / "config.json").write_text("{}")
    sums = {
        n: hashlib.sha256((model / n).read_bytes()).hexdigest()
        for n in ("model.safetensors", "config.json")
    }
    (model / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    if damage:
        (model / "model.safetensors").write_bytes(b"X" + weights[1:])
    repo = Repository.open_or_init(tmp_path / "repo")
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot(previous=None, tags={}, stack_dir=src)
        with writer.part("models", "immutable") as part:
            part.add_tree(src / "data" / "models", "data/models", sha256=True)
        manifest = writer.commit(box={})
    restored = tmp_path / "scratch"
    repo.restore(manifest, restored)
    return repo, manifest, restored


WORKER = HeldBack(
    service="worker",
    reason="its compose service reserves a GPU (gpus:)",
    ports=[8000],
    networks=["default"],
    mounts=[HeldMount(target="/models", source="/s/data/models", path="data/models")],
    consumers=["open-webui"],
)


def test_a_held_back_service_s_files_match_the_snapshot(tmp_path: Path) -> None:
    _, manifest, restored = models_snapshot(tmp_path, damage=False)
    (result,) = check_held_back_files.fn(restored, manifest, [WORKER])
    assert result.id == "data:gpu-files:data/models" and result.state == "ok", result
    assert "3 files" in result.observed and "worker:/models" in result.observed


@pytest.mark.parametrize("where", ["backup", "scratch copy"])
def test_a_damaged_model_file_fails_the_check(tmp_path: Path, where: str) -> None:
    _, manifest, restored = models_snapshot(tmp_path, damage=where == "backup")
    if where == "scratch copy":  # changed after the restore: differs from the snapshot's hash
        (restored / "data/models/m1/config.json").write_text('{"x": 1}')
    (result,) = check_held_back_files.fn(restored, manifest, [WORKER])
    assert result.state == "failing", result
    name = (
        "model.safetensors differs from its SHA256SUMS"
        if where == "backup"
        else ("config.json differs from the snapshot's sha256")
    )
    assert f"data/models/m1/{name}" in result.observed


def test_a_mount_the_snapshot_lacks_fails_the_check(tmp_path: Path) -> None:
    _, manifest, restored = models_snapshot(tmp_path, damage=False)
    lost = HeldMount(target="/cache", source="/srv/cache", path=None)
    held = WORKER.model_copy(update={"mounts": [lost]})
    (result,) = check_held_back_files.fn(restored, manifest, [held])
    assert result.state == "failing" and "/srv/cache" in result.observed


def test_the_report_says_what_was_not_started_and_what_was_checked(tmp_path: Path) -> None:
    _, manifest, restored = models_snapshot(tmp_path, damage=False)
    held = WORKER.model_copy(update={"relay": "sbx-live-worker"})
    checks = check_held_back_files.fn(restored, manifest, [held])
    (note,) = not_started([held], checks)
    assert note.checked_instead == ["data:gpu-files:data/models"]
    report = DrillReport.model_validate(
        {
            "drill_id": "D1", "snapshot_id": manifest.id, "repository": "r",
            "stack_dir": tmp_path, "scratch_project": "p", "passed": True,
            "started_at": manifest.created_at, "rto_s": 1.0, "phases": {}, "checks": checks,
            "not_started": [note],
        }
    )  # fmt: skip
    text = drill_markdown(report, [])
    assert "## Not started in the scratch project" in text
    assert "**worker**: its compose service reserves a GPU (gpus:)" in text
    assert "`data:gpu-files:data/models`" in text and "`sbx-live-worker`: GET and HEAD only" in text
