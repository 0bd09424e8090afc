"""`sbx gpu` end to end: the CLI runs the inspect-gpus flow on the test's Prefect server, over the
fake NVML (SBX_TEST_GPU_FAKE) or, on this machine without a driver, the real one; `--fit` runs
the capacity preflight without Prefect."""

from __future__ import annotations

import ctypes.util
import json
from pathlib import Path

import pytest
from gpu_helpers import run_sbx, write_model, write_spec

from tasks.clients.gpu_fake import GiB, h100
from tasks.gpu.check import FAKE_ENV


def gpu_json(tmp_path: Path, prefect_server: str, spec: dict[str, object]) -> tuple[int, dict]:
    fake = write_spec(tmp_path / "gpus.json", spec)
    done = run_sbx(
        "gpu", "--json", "--stack", str(tmp_path), prefect_api=prefect_server,
        env={FAKE_ENV: str(fake)},
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_healthy_gpus_exit_0_with_a_report_that_says_it_is_fake(
    tmp_path: Path, prefect_server: str
) -> None:
    code, report = gpu_json(tmp_path, prefect_server, {"gpus": [h100(0), h100(1)]})
    assert code == 0, report
    assert report["inventory"]["source"].startswith("fake:")
    assert [g["index"] for g in report["inventory"]["gpus"]] == [0, 1]
    assert {c["status"] for c in report["checks"]} == {"pass"}
    # the readings and checks are table artifacts in the Prefect UI
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ArtifactFilterKey(any_=["gpu-readings", "gpu-checks"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=keys))
    assert {a.key for a in artifacts} == {"gpu-readings", "gpu-checks"}
    assert all(a.type == "table" for a in artifacts)


def test_a_full_hot_gpu_exits_1_naming_the_checks(tmp_path: Path, prefect_server: str) -> None:
    fake = write_spec(
        tmp_path / "gpus.json", {"gpus": [h100(0, memory_used=79 * GiB, temperature=92)]}
    )
    done = run_sbx(
        "gpu", "--stack", str(tmp_path), prefect_api=prefect_server, env={FAKE_ENV: str(fake)}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "fail GPU 0 vram-headroom: 1.2 % free (1.0 GiB of 80.0 GiB)" in done.stderr
    assert "fail GPU 0 temperature: 92 °C" in done.stderr
    assert "NVIDIA H100 80GB HBM3" in done.stdout  # the table
    assert "2 check(s) failed" in done.stdout


def test_no_driver_is_information_and_exit_0(tmp_path: Path, prefect_server: str) -> None:
    code, report = gpu_json(tmp_path, prefect_server, {"init": "library_not_found"})
    assert code == 0
    assert report["inventory"]["available"] is False
    assert [c["status"] for c in report["checks"]] == ["info"]


def test_a_driver_library_mismatch_fails_with_the_next_step(
    tmp_path: Path, prefect_server: str
) -> None:
    code, report = gpu_json(tmp_path, prefect_server, {"init": "lib_rm_version_mismatch"})
    assert code == 1
    [check] = report["checks"]
    assert check["status"] == "fail" and "reboot the host" in check["message"]


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="has a driver")
def test_this_machine_without_a_driver_reads_no_gpu(tmp_path: Path, prefect_server: str) -> None:
    done = run_sbx("gpu", "--stack", str(tmp_path), prefect_api=prefect_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no GPU: NVML Shared Library Not Found" in done.stdout


def test_fit_compares_with_the_budget_of_the_gpu_where_vllm_would_start(tmp_path: Path) -> None:
    model = write_model(tmp_path / "llama", bf16_gib=14)  # 17.4 GiB needed at 8192
    spec = {"gpus": [h100(0, memory_used=70 * GiB), h100(1, memory_used=60 * GiB)]}
    fake = {FAKE_ENV: str(write_spec(tmp_path / "gpus.json", spec))}
    args = ["gpu", "--stack", str(tmp_path), "--fit", str(model), "--max-model-len", "8192"]
    # at vLLM's default 0.9 neither GPU has 72 GiB free: vLLM would not start on either
    default = run_sbx(*args, env=fake)
    assert default.returncode == 1, default.stdout + default.stderr
    assert "vLLM would stop at start-up" in default.stdout
    assert "at most 0.24 or stop what else holds memory on GPU 1" in default.stdout
    done = run_sbx(*args, "--gpu-memory-utilization", "0.24", env=fake)
    assert done.returncode == 0, done.stdout + done.stderr  # 17.4 ≤ 80 × 0.24 = 19.2 GiB
    assert "GPU 1 (NVIDIA H100 80GB HBM3): budget 80.00 GiB × 0.24" in done.stdout
    assert "17.40 GiB ≤ 19.20 GiB" in done.stdout
    tight = run_sbx(
        *args, "--gpu-memory-utilization", "0.24", "--max-num-seqs", "4", "--json", env=fake
    )
    assert tight.returncode == 1
    verdict = json.loads(tight.stdout)
    assert verdict["verdict"] == "does not fit" and verdict["kv_cache"]["bytes"] == 4 * GiB
    assert verdict["budget"]["utilization"] == 0.24
    given = run_sbx(*args, "--free-gib", "30", env={FAKE_ENV: "/nonexistent"})
    assert given.returncode == 0 and "given free memory: 30.00 GiB" in given.stdout
    unknown = run_sbx(
        *args, env={FAKE_ENV: str(write_spec(tmp_path / "n.json", {"init": "driver_not_loaded"}))}
    )
    assert unknown.returncode == 2 and "verdict unknown" in unknown.stdout
    assert "GPU memory unknown (no GPU reading" in unknown.stdout
