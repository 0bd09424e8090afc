"""The GPU family of the health checks over h-gpu's report, read through the fake NVML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from health_helpers import report

from blocks.config import SbxConfig
from tasks.clients.gpu_fake import GiB, h100
from tasks.gpu.check import FAKE_ENV
from tasks.health.metrics import render
from tasks.health.model import HealthContext
from tasks.health.round import run_family


def gpu_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, object]) -> dict:  # type: ignore[type-arg]
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps(spec))
    monkeypatch.setenv(FAKE_ENV, str(fake))
    config = SbxConfig(stack_dir=tmp_path)
    ctx = HealthContext(stack_dir=tmp_path, project="p", services={})
    return {r.id: r for r in run_family("gpu", config, ctx, str(tmp_path / "repo"))}


def test_one_check_per_gpu_with_memory_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"gpus": [h100(0), h100(1, memory_used=79 * GiB)]}
    got = gpu_results(tmp_path, monkeypatch, spec)
    assert sorted(got) == ["gpu:0", "gpu:1"]
    assert got["gpu:0"].state == "ok" and "2.0 of 80.0 GiB used" in got["gpu:0"].observed
    assert got["gpu:1"].state == "failing" and "vram-headroom" in got["gpu:1"].observed
    assert got["gpu:1"].measures["gpu_memory_used_bytes"] == 79 * GiB
    text = render(report(*got.values()))
    assert 'sbx_health_gpu_memory_used_bytes{check="gpu:1",family="gpu",target="1"}' in text


def test_no_driver_is_information(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = gpu_results(tmp_path, monkeypatch, {"init": "library_not_found"})
    assert list(got) == ["gpu:nvml"]
    assert got["gpu:nvml"].state == "info" and "no GPU" in got["gpu:nvml"].observed


def test_driver_mismatch_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = gpu_results(tmp_path, monkeypatch, {"init": "lib_rm_version_mismatch"})
    assert got["gpu:nvml"].state == "failing"
