"""NvmlClient over the fake NVML when things go wrong the ways NVML reports them."""

from __future__ import annotations

import ctypes.util

import pytest

from sbx.errors import GpuError, NoGpu
from tasks.clients.gpu import connect, decode_throttle_reasons, read_inventory
from tasks.clients.gpu_fake import FakeNvml, h100


@pytest.mark.parametrize("init", ["library_not_found", "driver_not_loaded"])
def test_a_machine_without_the_driver_reads_as_no_gpu(init: str) -> None:
    inventory = read_inventory(FakeNvml({"init": init}), source="fake")
    assert not inventory.available and inventory.gpus == []
    assert "libnvidia-ml.so.1 or kernel driver missing" in (inventory.reason or "")


def test_a_driver_that_sees_no_gpu_reads_as_no_gpu() -> None:
    inventory = read_inventory(FakeNvml({"gpus": []}), source="fake")
    assert not inventory.available
    assert inventory.reason == "the NVIDIA driver is loaded but sees no GPU"


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has libnvidia-ml"
)
def test_the_real_nvml_without_a_driver_reads_as_no_gpu() -> None:
    inventory = read_inventory()
    assert not inventory.available and inventory.source == "nvml"
    with pytest.raises(NoGpu, match="No NVIDIA GPU on this machine"), connect():
        pass


def test_a_driver_library_mismatch_is_an_error_with_the_next_step() -> None:
    with pytest.raises(GpuError, match="reboot the host or reload the nvidia kernel") as caught:
        read_inventory(FakeNvml({"init": "lib_rm_version_mismatch", "gpus": [h100()]}))
    assert not isinstance(caught.value, NoGpu) and not caught.value.retryable


def test_a_lost_gpu_is_a_failure_naming_it_and_the_others_are_still_read() -> None:
    spec = {"gpus": [h100(0), h100(1, error="gpu_is_lost"), h100(2)]}
    inventory = read_inventory(FakeNvml(spec), source="fake")
    assert [g.index for g in inventory.gpus] == [0, 2]
    [failure] = inventory.failures
    assert failure.index == 1
    assert "GPU 1" in failure.message and "GPU is lost" in failure.message
    assert "dmesg | grep -i xid" in failure.message


def test_unsupported_readings_are_none_and_named() -> None:
    gpu = h100(not_supported=["power", "utilization", "ecc_counts", "throttle_reasons"])
    [reading] = read_inventory(FakeNvml({"gpus": [gpu]})).gpus
    assert reading.power_w is None and reading.utilization_gpu_pct is None
    assert reading.throttle_reasons is None
    assert reading.ecc is not None and reading.ecc.enabled
    assert reading.ecc.volatile_uncorrected is None
    assert {"power", "utilization", "throttle_reasons"} <= set(reading.not_supported)
    assert "ecc_volatile_uncorrected" in reading.not_supported


def test_ecc_disabled_is_a_reading_not_an_absence() -> None:
    [reading] = read_inventory(FakeNvml({"gpus": [h100(ecc={"enabled": False})]})).gpus
    assert reading.ecc is not None and not reading.ecc.enabled
    assert reading.ecc.volatile_uncorrected is None


def test_errors_memory_and_xids_are_read_through() -> None:
    gpu = h100(
        ecc={
            "enabled": True,
            "volatile": {"corrected": 5, "uncorrected": 1},
            "aggregate": {"corrected": 9, "uncorrected": 1},
        },
        remapped_rows=[1, 1, 1, 0],
        retired_pages={"multiple_single_bit": 2, "double_bit": 1, "pending": True},
        not_supported=[],
        xids=[79, 48],
        throttle_reasons=0x48,
    )
    [reading] = read_inventory(FakeNvml({"gpus": [gpu]}), xid_wait_ms=5).gpus
    assert reading.ecc is not None and reading.ecc.volatile_uncorrected == 1
    assert reading.remapped_rows is not None and reading.remapped_rows.pending
    assert reading.retired_pages is not None and reading.retired_pages.double_bit == 1
    assert [e.xid for e in reading.xid_events or []] == [79, 48]
    assert reading.throttle_reasons == ["hw_slowdown", "hw_thermal_slowdown"]


def test_throttle_reason_bits_decode_to_names() -> None:
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x4 | 0x80) == ["sw_power_cap", "hw_power_brake_slowdown"]
    assert decode_throttle_reasons(0x1 | 0x10000) == ["gpu_idle", "unknown_0x10000"]


def test_calls_outside_init_fail_like_nvml() -> None:
    nvml = FakeNvml({"gpus": [h100()]})
    with connect(nvml) as client:
        assert client.read().available
    assert nvml.initialised == 0
    with pytest.raises(GpuError, match="Uninitialized"):
        client.read()
