"""Judging GPU readings (pure) and finding the container behind a GPU process (from /proc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blocks.config import GpuConfig
from tasks.clients.gpu import read_inventory
from tasks.clients.gpu_fake import FakeNvml, GiB, h100
from tasks.clients.vllm_metrics import ServingLoad
from tasks.gpu.check import container_of_pid, owners
from tasks.gpu.rules import GpuCheck, GpuProcessOwner, evaluate

LIMITS = GpuConfig()
IDLE = [ServingLoad(service="worker", url="u", requests_running=0.0)]
BUSY = [ServingLoad(service="worker", url="u", requests_running=3.0)]
UNKNOWN = [ServingLoad(service="worker", url="u", error="HTTP 404")]


def judge(
    gpu: dict[str, Any],
    serving: list[ServingLoad] = IDLE,
    procs: list[GpuProcessOwner] | None = None,
    limits: GpuConfig = LIMITS,
) -> dict[str, GpuCheck]:
    inventory = read_inventory(FakeNvml({"gpus": [gpu]}), source="fake", xid_wait_ms=0)
    return {c.name: c for c in evaluate(inventory, procs or [], serving, limits)}


def test_a_healthy_gpu_passes_every_check() -> None:
    checks = judge(h100())
    assert {n: c.status for n, c in checks.items()} == {
        "vram-headroom": "pass",
        "temperature": "pass",
        "pegged-while-idle": "pass",
    }
    assert checks["vram-headroom"].message == "97.5 % free (78.0 GiB of 80.0 GiB)"


def test_low_headroom_fails_naming_the_largest_users() -> None:
    procs = [
        GpuProcessOwner(gpu_index=0, pid=11, kind="compute", used_memory_bytes=70 * GiB,
                        container="stack-worker-1", service="worker"),
        GpuProcessOwner(gpu_index=0, pid=12, kind="compute", used_memory_bytes=8 * GiB),
    ]  # fmt: skip
    check = judge(h100(memory_used=79 * GiB), procs=procs)["vram-headroom"]
    assert check.status == "fail"
    assert "1.2 % free (1.0 GiB of 80.0 GiB), below 3 %" in check.message
    assert "worker (pid 11) 70.0 GiB, pid 12 8.0 GiB" in check.message
    mib = judge(h100(memory_used=70 * GiB), limits=GpuConfig(min_free_vram_mib=20_000))
    assert (
        mib["vram-headroom"].status == "fail" and "below 20000 MiB" in mib["vram-headroom"].message
    )
    off = GpuConfig(min_free_vram_pct=None)
    assert judge(h100(memory_used=79 * GiB), limits=off)["vram-headroom"].status == "pass"


def test_temperature_threshold() -> None:
    hot = judge(h100(temperature=91))["temperature"]
    assert hot.status == "fail" and "91 °C, at or above 85 °C" in hot.message
    assert judge(h100(not_supported=["temperature"]))["temperature"].status == "info"


def test_pegged_utilisation_fails_only_while_no_request_runs() -> None:
    pegged = h100(utilization={"gpu": 99, "memory": 80})
    idle = judge(pegged, IDLE)["pegged-while-idle"]
    assert idle.status == "fail"
    assert "utilisation 99 % (≥ 95 %) while no request runs on worker" in idle.message
    assert judge(pegged, BUSY)["pegged-while-idle"].status == "pass"
    unknown = judge(pegged, UNKNOWN)["pegged-while-idle"]
    assert unknown.status == "unknown"
    assert "worker: HTTP 404" in unknown.message and "not possible" in unknown.message
    assert judge(pegged, [])["pegged-while-idle"].status == "unknown"
    assert (
        judge(h100(utilization={"gpu": 50, "memory": 1}), UNKNOWN)["pegged-while-idle"].status
        == "pass"
    )


def test_hardware_complaints() -> None:
    checks = judge(
        h100(
            throttle_reasons=0x40 | 0x4,  # hw thermal slowdown + sw power cap (not warned)
            ecc={
                "enabled": True,
                "volatile": {"corrected": 0, "uncorrected": 2},
                "aggregate": {"corrected": 0, "uncorrected": 2},
            },
            remapped_rows=[0, 1, 1, 0],
            xids=[79],
        )
    )
    assert checks["throttle"].status == "warn"
    assert checks["throttle"].message.startswith("clocks held back: hw_thermal_slowdown;")
    assert checks["memory-errors"].status == "fail"
    assert "2 uncorrectable ECC error(s)" in checks["memory-errors"].message
    assert "a row remap waits for a GPU reset" in checks["memory-errors"].message
    assert checks["xid"].status == "fail" and "XID critical error(s) 79" in checks["xid"].message
    pending = judge(h100(remapped_rows=[1, 0, 1, 0]))["memory-errors"]
    assert pending.status == "warn"


def test_no_gpu_is_information_and_an_unreadable_gpu_fails() -> None:
    none = read_inventory(FakeNvml({"init": "driver_not_loaded"}), source="fake")
    [info] = evaluate(none, [], [], LIMITS)
    assert info.status == "info" and info.message.startswith("no GPU: ")
    lost = read_inventory(FakeNvml({"gpus": [h100(0), h100(1, error="gpu_is_lost")]}))
    checks = evaluate(lost, [], IDLE, LIMITS)
    failing = [c for c in checks if c.status == "fail"]
    assert [(c.name, c.gpu) for c in failing] == [("read", 1)]


CGROUP_V1 = "12:memory:/docker/{id}\n11:pids:/docker/{id}\n0::/\n"
CGROUP_SYSTEMD = "0::/system.slice/docker-{id}.scope\n"
CGROUP_HOST = "0::/user.slice/user-0.slice/session-1.scope\n"


def test_the_container_of_a_pid_comes_from_its_cgroup(tmp_path: Path) -> None:
    cid = "ab" * 32
    for pid, text in ((10, CGROUP_V1), (11, CGROUP_SYSTEMD), (12, CGROUP_HOST)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text.format(id=cid))
    assert container_of_pid(10, tmp_path) == cid
    assert container_of_pid(11, tmp_path) == cid
    assert container_of_pid(12, tmp_path) is None
    assert container_of_pid(13, tmp_path) is None  # gone, or another pid namespace


def test_processes_outside_containers_stay_pids(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "cgroup").write_text(CGROUP_HOST)
    spec = h100(processes={"compute": [{"pid": 77, "used": GiB}], "graphics": [{"pid": 78}]})
    inventory = read_inventory(FakeNvml({"gpus": [spec]}), source="fake")
    found = owners(inventory, tmp_path)
    assert [(p.pid, p.kind, p.service, p.label) for p in found] == [
        (77, "compute", None, "pid 77"),
        (78, "graphics", None, "pid 78"),
    ]


def test_the_gpu_deployment_runs_every_5_minutes_one_at_a_time() -> None:
    import yaml
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)  # Prefect's own reading of the file
    [gpu] = [d for d in model.deployments if d.entrypoint == "flows/gpu.py:inspect_gpus"]
    assert gpu.concurrency_limit is not None and not isinstance(gpu.concurrency_limit, int)
    assert gpu.concurrency_limit.limit == 1
    assert gpu.concurrency_limit.collision_strategy == "CANCEL_NEW"
    [entry] = [d for d in raw["deployments"] if d["entrypoint"] == gpu.entrypoint]
    assert [s["cron"] for s in entry["schedules"]] == ["*/5 * * * *"]
