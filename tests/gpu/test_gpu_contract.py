"""The GPU client's contract: what every reading must satisfy, on the fake NVML and on a real GPU.

The same tests run against ``NvmlClient`` over the fake (always) and over the real NVML (marker
``gpu``: deselected by default, selected by ``-m gpu`` in scripts/gpu-check.sh). This file must
run with ``pytest --noconftest`` on a GPU machine that has only pytest, pydantic and
nvidia-ml-py: it imports nothing else of sbx than tasks.clients.gpu and its fake.

On the real GPU, ``SBX_GPU_CHECK_PID`` names a process that holds GPU memory (the script starts
one); without a GPU, the real variant skips — except when ``SBX_GPU_CHECK=1`` or ``CI=true``,
where a missing GPU fails the run instead of passing quietly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from tasks.clients.gpu import THROTTLE_REASONS, GpuInventory, connect, read_inventory
from tasks.clients.gpu_fake import FakeNvml, GiB, h100


@dataclass
class Subject:
    """What the contract runs against: an NVML (None: the real pynvml) and a pid it must list."""

    nvml: Any
    source: str
    pid: int | None

    def __call__(self, **kw: Any) -> GpuInventory:
        return read_inventory(self.nvml, source=self.source, **kw)


FAKE_PID = 4242
FAKE_SPEC = {
    "gpus": [
        h100(
            0,
            memory_used=3 * GiB,
            processes={"compute": [{"pid": FAKE_PID, "used": GiB}], "graphics": []},
        ),
        h100(1, not_supported=["power", "power_limit", "ecc", "xid_events", "retired_pages"]),
    ]
}


def _real_nvml() -> Subject:
    probe = read_inventory()
    if not probe.available:
        message = f"no NVIDIA GPU here ({probe.reason})"
        if os.environ.get("SBX_GPU_CHECK") == "1" or os.environ.get("CI") == "true":
            pytest.fail(message + ": the gpu tests were asked for on a machine without one")
        pytest.skip(message)
    pid = os.environ.get("SBX_GPU_CHECK_PID")
    return Subject(None, "nvml", int(pid) if pid else None)


@pytest.fixture(params=["fake", pytest.param("nvml", marks=pytest.mark.gpu)])
def reader(request: pytest.FixtureRequest) -> Subject:
    if request.param == "nvml":
        return _real_nvml()
    return Subject(FakeNvml(FAKE_SPEC), "fake", FAKE_PID)


def test_every_gpu_is_read_with_identity(reader: Subject) -> None:
    inventory = reader()
    assert inventory.available and inventory.reason is None
    assert inventory.failures == [], inventory.failures
    assert [g.index for g in inventory.gpus] == list(range(len(inventory.gpus)))
    uuids = [g.uuid for g in inventory.gpus]
    assert all(u.startswith(("GPU-", "MIG-")) for u in uuids) and len(set(uuids)) == len(uuids)
    assert all(g.name for g in inventory.gpus)
    assert inventory.driver_version and inventory.driver_version[0].isdigit()


def test_memory_adds_up(reader: Subject) -> None:
    for gpu in reader().gpus:
        assert gpu.memory_total_bytes > GiB
        assert 0 <= gpu.memory_used_bytes <= gpu.memory_total_bytes
        slack = gpu.memory_total_bytes // 100  # reserved memory differs between NVML versions
        total = gpu.memory_used_bytes + gpu.memory_free_bytes
        assert abs(total - gpu.memory_total_bytes) <= slack
        assert 0.0 <= gpu.free_pct <= 100.0


def test_readings_are_in_range_or_not_supported(reader: Subject) -> None:
    for gpu in reader().gpus:
        for pct in (gpu.utilization_gpu_pct, gpu.utilization_memory_pct):
            assert pct is None or 0 <= pct <= 100
        assert gpu.temperature_c is None or 0 < gpu.temperature_c < 130
        if gpu.power_w is not None:
            assert gpu.power_w >= 0
            assert gpu.power_limit_w is None or gpu.power_w <= 1.5 * gpu.power_limit_w
        known = set(THROTTLE_REASONS.values())
        assert gpu.throttle_reasons is None or set(gpu.throttle_reasons) <= known
        if gpu.ecc is not None and gpu.ecc.enabled:
            counts = gpu.ecc.model_dump(exclude={"enabled"}).values()
            assert all(c is None or c >= 0 for c in counts)
        for name, value in (
            ("power", gpu.power_w),
            ("ecc", gpu.ecc),
            ("xid_events", gpu.xid_events),
            ("retired_pages", gpu.retired_pages),
            ("remapped_rows", gpu.remapped_rows),
        ):
            assert (value is None) == (name in gpu.not_supported), name


def test_processes_and_their_memory(reader: Subject) -> None:
    gpus, expected_pid = reader().gpus, reader.pid
    for gpu in gpus:
        keys = [(p.pid, p.kind) for p in gpu.processes]
        assert len(set(keys)) == len(keys)
        for proc in gpu.processes:
            assert proc.pid > 0 and proc.kind in ("compute", "graphics")
            assert proc.used_memory_bytes is None or proc.used_memory_bytes >= 0
    if expected_pid is None:
        pytest.skip("SBX_GPU_CHECK_PID not set: no known GPU process to look for")
    held = [p for g in gpus for p in g.processes if p.pid == expected_pid]
    assert held, f"pid {expected_pid} not among {[p.pid for g in gpus for p in g.processes]}"
    # the fake's process holds 1 GiB; the script's torch process at least 1 GiB
    assert all(p.used_memory_bytes is None or p.used_memory_bytes >= GiB // 2 for p in held)


def test_xid_listening_reports_a_list_or_not_supported(reader: Subject) -> None:
    for gpu in reader(xid_wait_ms=20).gpus:
        assert gpu.xid_events is None or all(e.gpu_index == gpu.index for e in gpu.xid_events)


def test_the_reading_round_trips_as_json_and_identity_is_stable(
    reader: Subject,
) -> None:
    first, second = reader(), reader()
    assert GpuInventory.model_validate_json(first.model_dump_json()) == first
    assert [g.uuid for g in first.gpus] == [g.uuid for g in second.gpus]
    assert first.schema_version == 1


def test_connect_opens_and_closes_nvml_repeatedly(reader: Subject) -> None:
    for _ in range(3):
        with connect(reader.nvml) as client:
            assert client.read().gpus
