"""What a reading of NVIDIA GPUs gives (tasks/clients/gpu.py fills these): frozen models with a
``schema_version``, shared by the GPU checks, the health flow and scripts/gpu-check.sh."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuProcess(_Frozen):
    pid: int
    kind: Literal["compute", "graphics"]
    used_memory_bytes: int | None  # None: NVML cannot tell (e.g. without privileges)


class EccErrors(_Frozen):
    enabled: bool
    volatile_corrected: int | None = None  # since the last driver load
    volatile_uncorrected: int | None = None
    aggregate_corrected: int | None = None  # over the GPU's lifetime
    aggregate_uncorrected: int | None = None


class RetiredPages(_Frozen):
    """Page retirement (before Ampere): pages taken out of service after ECC errors."""

    multiple_single_bit: int
    double_bit: int
    pending: bool  # retirement waits for the next driver reload


class RemappedRows(_Frozen):
    """Row remapping (Ampere and later): rows replaced after ECC errors."""

    corrected: int
    uncorrected: int
    pending: bool  # a GPU reset is needed to apply a remap
    failed: bool  # a remap failed: the GPU should be serviced


class XidEvent(_Frozen):
    xid: int
    gpu_index: int


class GpuReading(_Frozen):
    index: int
    name: str
    uuid: str
    pci_bus_id: str | None
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int
    utilization_gpu_pct: int | None
    utilization_memory_pct: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    throttle_reasons: list[str] | None
    ecc: EccErrors | None
    retired_pages: RetiredPages | None
    remapped_rows: RemappedRows | None
    xid_events: list[XidEvent] | None
    processes: list[GpuProcess]
    not_supported: list[str]  # readings NVML refused on this GPU (None above)

    @property
    def free_pct(self) -> float:
        return (
            100.0 * self.memory_free_bytes / self.memory_total_bytes
            if self.memory_total_bytes
            else 0.0
        )


class GpuReadFailure(_Frozen):
    index: int
    message: str


class GpuInventory(_Frozen):
    """Everything one reading of NVML gave; ``available=False`` means this machine has no GPU."""

    schema_version: int = SCHEMA_VERSION
    read_at: datetime
    source: str  # "nvml", or "fake:<file>" in tests
    available: bool
    reason: str | None = None  # why no GPU is available
    driver_version: str | None = None
    nvml_version: str | None = None
    cuda_driver_version: str | None = None
    gpus: list[GpuReading] = []
    failures: list[GpuReadFailure] = []
