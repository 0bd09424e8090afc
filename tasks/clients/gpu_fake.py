"""A stand-in for the ``pynvml`` module, for tests: the real :class:`~tasks.clients.gpu.NvmlClient`
runs against it, so its decoding, "not supported" handling and error translation are what the
tests exercise (the fake sits below the client, like moto below boto3).

It answers from a spec (a dict, or a JSON file) describing a box's GPUs, and fails the way NVML
does, raising pynvml's own exception classes: a missing library or driver at init, "not
supported" for features a GPU lacks, "GPU is lost" for a GPU that fell off the bus, and
"uninitialized" for any call outside nvmlInit/nvmlShutdown. Spec keys (all optional)::

    {"init": "ok" | "library_not_found" | "driver_not_loaded" | "lib_rm_version_mismatch",
     "driver_version": "580.159.04", "nvml_version": "13.580.159.04", "cuda_driver_version": 13000,
     "gpus": [{"name": ..., "uuid": "GPU-...", "pci_bus_id": ..., "memory_total": bytes,
               "memory_used": bytes, "utilization": {"gpu": %, "memory": %}, "temperature": C,
               "power_mw": mW, "power_limit_mw": mW, "throttle_reasons": bits,
               "ecc": {"enabled": bool, "volatile": {"corrected": n, "uncorrected": n},
                       "aggregate": {...}},
               "retired_pages": {"multiple_single_bit": n, "double_bit": n, "pending": bool},
               "remapped_rows": [corrected, uncorrected, pending, failed],
               "xids": [79], "processes": {"compute": [{"pid": n, "used": bytes}], "graphics": []},
               "not_supported": ["power", "ecc", "retired_pages", "xid_events", ...],
               # a reading named there, or whose key is absent, is "not supported"
               "error": null | "gpu_is_lost" | "reset_required"}]}

Tests select it for the whole process (the sbx CLI in a subprocess too) with the environment
variable ``SBX_TEST_GPU_FAKE=<spec.json>``; see tasks/gpu/check.py. Never set it on a real box.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

GiB = 1 << 30

_INIT_ERRORS = {
    "library_not_found": pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    "driver_not_loaded": pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    "lib_rm_version_mismatch": pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
}
_GPU_ERRORS = {
    "gpu_is_lost": pynvml.NVML_ERROR_GPU_IS_LOST,
    "reset_required": pynvml.NVML_ERROR_RESET_REQUIRED,
}


def h100(index: int = 0, **overrides: Any) -> dict[str, Any]:
    """Spec of one idle-ish H100 80GB as NVML describes it (overridable key by key)."""
    spec: dict[str, Any] = {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": f"GPU-00000000-fake-4000-8000-{index:012d}",
        "pci_bus_id": f"00000000:{index + 1:02X}:00.0",
        "memory_total": 80 * GiB,
        "memory_used": 2 * GiB,
        "utilization": {"gpu": 3, "memory": 1},
        "temperature": 34,
        "power_mw": 72_000,
        "power_limit_mw": 700_000,
        "throttle_reasons": 0x1,
        "ecc": {
            "enabled": True,
            "volatile": {"corrected": 0, "uncorrected": 0},
            "aggregate": {"corrected": 2, "uncorrected": 0},
        },
        "remapped_rows": [0, 0, 0, 0],
        "not_supported": ["retired_pages"],  # Hopper remaps rows instead of retiring pages
        "processes": {"compute": [], "graphics": []},
        "xids": [],
    }
    spec.update(overrides)
    return spec


@dataclass
class _EventSet:
    events: list[tuple[int, int]] = field(default_factory=list)  # (event type, data)


class FakeNvml:
    """The subset of the pynvml module NvmlClient uses, answering from a spec."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.initialised = 0

    @classmethod
    def from_file(cls, path: str | Path) -> FakeNvml:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def __getattr__(self, name: str) -> Any:
        # constants (NVML_*, nvmlEventType*) are pynvml's own
        if name.startswith(("NVML_", "nvmlEventType")):
            return getattr(pynvml, name)
        raise AttributeError(name)

    # --- library
    def nvmlInit(self) -> None:
        failure = _INIT_ERRORS.get(self.spec.get("init", "ok"))
        if failure is not None:
            raise pynvml.NVMLError(failure)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._ready()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._ready().get("driver_version", "580.159.04"))

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(self._ready().get("nvml_version", "13.580.159.04"))

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return int(self._ready().get("cuda_driver_version", 13000))

    def nvmlDeviceGetCount(self) -> int:
        return len(self._ready().get("gpus", []))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < self.nvmlDeviceGetCount():
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._gpu(index, None)
        return index

    # --- device readings (the handle is the index)
    def nvmlDeviceGetName(self, h: int) -> str:
        return str(self._gpu(h, None).get("name", "NVIDIA H100 80GB HBM3"))

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return str(self._gpu(h, None).get("uuid", f"GPU-fake-{h}"))

    def nvmlDeviceGetPciInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(busId=self._gpu(h, "pci_bus_id")["pci_bus_id"].encode())

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        gpu = self._gpu(h, None)
        total, used = int(gpu["memory_total"]), int(gpu.get("memory_used", 0))
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(**self._gpu(h, "utilization")["utilization"])

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return int(self._gpu(h, "temperature")["temperature"])

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return int(self._gpu(h, "power", "power_mw")["power_mw"])

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return int(self._gpu(h, "power_limit", "power_limit_mw")["power_limit_mw"])

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return int(self._gpu(h, "throttle_reasons")["throttle_reasons"])

    def nvmlDeviceGetEccMode(self, h: int) -> list[int]:
        enabled = int(bool(self._gpu(h, "ecc")["ecc"]["enabled"]))
        return [enabled, enabled]

    def nvmlDeviceGetTotalEccErrors(self, h: int, error_type: int, counter_type: int) -> int:
        ecc = self._gpu(h, "ecc_counts", "ecc")["ecc"]
        counter = ecc["volatile" if counter_type == pynvml.NVML_VOLATILE_ECC else "aggregate"]
        kind = (
            "corrected" if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else "uncorrected"
        )
        return int(counter[kind])

    def nvmlDeviceGetRetiredPages(self, h: int, cause: int) -> list[int]:
        pages = self._gpu(h, "retired_pages")["retired_pages"]
        single = cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
        count = pages["multiple_single_bit" if single else "double_bit"]
        return [0x1000 * (n + 1) for n in range(int(count))]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: int) -> int:
        return int(bool(self._gpu(h, "retired_pages")["retired_pages"]["pending"]))

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        corrected, uncorrected, pending, failed = self._gpu(h, "remapped_rows")["remapped_rows"]
        return int(corrected), int(uncorrected), int(pending), int(failed)

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[SimpleNamespace]:
        return self._processes(h, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list[SimpleNamespace]:
        return self._processes(h, "graphics")

    # --- events
    def nvmlEventSetCreate(self) -> _EventSet:
        self._ready()
        return _EventSet()

    def nvmlDeviceRegisterEvents(self, h: int, event_types: int, event_set: _EventSet) -> None:
        xids = self._gpu(h, "xid_events", "xids")["xids"]
        if event_types & pynvml.nvmlEventTypeXidCriticalError:
            event_set.events += [(pynvml.nvmlEventTypeXidCriticalError, int(x)) for x in xids]

    def nvmlEventSetWait_v2(self, event_set: _EventSet, timeout_ms: int) -> SimpleNamespace:
        self._ready()
        if not event_set.events:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
        event_type, data = event_set.events.pop(0)
        return SimpleNamespace(eventType=event_type, eventData=data, device=None)

    def nvmlEventSetFree(self, event_set: _EventSet) -> None:
        self._ready()

    # --- helpers
    def _ready(self) -> dict[str, Any]:
        if self.initialised <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        return self.spec

    def _gpu(self, h: int, feature: str | None, key: str | None = None) -> dict[str, Any]:
        """The GPU's spec; a feature it names as not supported, or lacks, is "not supported"."""
        gpu: dict[str, Any] = self._ready()["gpus"][h]
        if gpu.get("error"):
            raise pynvml.NVMLError(_GPU_ERRORS[gpu["error"]])
        if feature is not None and (
            feature in gpu.get("not_supported", []) or (key or feature) not in gpu
        ):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def _processes(self, h: int, kind: str) -> list[SimpleNamespace]:
        listed = self._gpu(h, "processes")["processes"].get(kind, [])
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used")) for p in listed]
