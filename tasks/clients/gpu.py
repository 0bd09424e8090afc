"""NVIDIA GPUs through NVML (``pynvml`` from ``nvidia-ml-py``): the only module that imports it.

:func:`read_inventory` is the one call most code needs: it opens NVML, reads every GPU and closes
it again. A machine without the NVIDIA library or driver gives an inventory with
``available=False`` and the reason: information, not a failure. Per GPU, NVML's "not supported"
(and "no permission", or a function the installed driver lacks) makes that reading ``None`` and
names it in ``not_supported``; a GPU that cannot be read at all (lost, needs a reset) becomes a
:class:`GpuReadFailure` naming it, so the other GPUs are still reported. Everything else is
translated into :class:`GpuError` naming the GPU and the next step.

XIDs: NVML exposes them only as events, delivered to an event set registered *before* they
happen. A reading registers one per GPU and waits ``xid_wait_ms`` (default 0: one non-blocking
poll), so it reports only XIDs raised while it listens; older ones are in the kernel log
(``dmesg | grep -i xid``). ``xid_events`` is ``None`` where event sets are not supported.

This module imports nothing of sbx but its error tree, and no SDK but pynvml: scripts/gpu-check.sh
runs it on a GPU machine with only pydantic and nvidia-ml-py installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import pynvml

from sbx.errors import GpuError, NoGpu
from tasks.clients.gpu_models import (
    EccErrors,
    GpuInventory,
    GpuProcess,
    GpuReadFailure,
    GpuReading,
    RemappedRows,
    RetiredPages,
    XidEvent,
)

T = TypeVar("T")

#: clock event ("throttle") reason bits, as nvml.h names them
THROTTLE_REASONS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


# NVML answers that mean "this GPU cannot give that reading", not "something is broken"
_ABSENT = (
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_FunctionNotFound,
    pynvml.NVMLError_NoData,
)
_NO_DRIVER = (pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded)
_NEXT_STEP: dict[type[Exception], str] = {
    pynvml.NVMLError_GpuIsLost: "The GPU fell off the bus: check 'nvidia-smi' and the kernel "
    "log ('dmesg | grep -i xid', XID 79); the host usually needs a reboot.",
    pynvml.NVMLError_LibRmVersionMismatch: "The NVML library and the loaded kernel driver differ "
    "(driver upgraded without a reboot): reboot the host or reload the nvidia kernel modules.",
    pynvml.NVMLError_ResetRequired: "Reset the GPU ('nvidia-smi -r -i N' with its processes "
    "stopped) or reboot the host.",
    pynvml.NVMLError_InsufficientPower: "Check the GPU's power cables and power supply.",
    pynvml.NVMLError_CorruptedInforom: "The GPU's infoROM is corrupted: have it serviced.",
    pynvml.NVMLError_NoPermission: "Run sbx as a user allowed to query the GPU.",
}
_RETRYABLE = (pynvml.NVMLError_Timeout, pynvml.NVMLError_Unknown)


class NvmlClient:
    """An initialised NVML; build it with :func:`connect`. ``nvml`` is the pynvml module, or a
    stand-in with the same functions (tasks/clients/gpu_fake.py) for tests."""

    def __init__(self, nvml: Any, source: str) -> None:
        self._nvml = nvml
        self.source = source

    def read(self, *, xid_wait_ms: int = 0) -> GpuInventory:
        """Read every GPU; a GPU that cannot be read becomes a failure naming it."""
        nv = self._nvml
        count = self._call("count the GPUs", "this machine", nv.nvmlDeviceGetCount)
        if count == 0:
            raise NoGpu("the NVIDIA driver is loaded but sees no GPU")
        gpus, failures = [], []
        for index in range(count):
            try:
                gpus.append(self.read_gpu(index, xid_wait_ms=xid_wait_ms))
            except GpuError as exc:
                failures.append(GpuReadFailure(index=index, message=str(exc)))
        cuda = self._optional(nv.nvmlSystemGetCudaDriverVersion_v2, [], "cuda_driver_version")
        return GpuInventory(
            read_at=datetime.now(UTC),
            source=self.source,
            available=True,
            driver_version=self._optional(nv.nvmlSystemGetDriverVersion, [], "driver"),
            nvml_version=self._optional(nv.nvmlSystemGetNVMLVersion, [], "nvml_version"),
            cuda_driver_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
            gpus=gpus,
            failures=failures,
        )

    def read_gpu(self, index: int, *, xid_wait_ms: int = 0) -> GpuReading:
        nv, where = self._nvml, f"GPU {index}"
        handle = self._call("open the GPU", where, nv.nvmlDeviceGetHandleByIndex, index)
        uuid = _text(self._call("read the UUID", where, nv.nvmlDeviceGetUUID, handle))
        where = f"GPU {index} ({uuid})"
        memory = self._call("read memory use", where, nv.nvmlDeviceGetMemoryInfo, handle)
        missing: list[str] = []

        def opt(name: str, fn: Callable[..., T], *args: Any) -> T | None:
            return self._optional(fn, [handle, *args], name, missing, where)

        util = opt("utilization", nv.nvmlDeviceGetUtilizationRates)
        power = opt("power", nv.nvmlDeviceGetPowerUsage)
        limit = opt("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit)
        reasons = opt("throttle_reasons", nv.nvmlDeviceGetCurrentClocksEventReasons)
        pci = opt("pci_bus_id", nv.nvmlDeviceGetPciInfo)
        return GpuReading(
            index=index,
            name=_text(self._call("read the name", where, nv.nvmlDeviceGetName, handle)),
            uuid=uuid,
            pci_bus_id=_text(pci.busId) if pci is not None else None,
            memory_total_bytes=int(memory.total),
            memory_used_bytes=int(memory.used),
            memory_free_bytes=int(memory.free),
            utilization_gpu_pct=int(util.gpu) if util is not None else None,
            utilization_memory_pct=int(util.memory) if util is not None else None,
            temperature_c=opt("temperature", nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU),
            power_w=power / 1000 if power is not None else None,
            power_limit_w=limit / 1000 if limit is not None else None,
            throttle_reasons=decode_throttle_reasons(reasons) if reasons is not None else None,
            ecc=self._ecc(handle, opt),
            retired_pages=self._retired_pages(handle, opt),
            remapped_rows=self._remapped_rows(opt),
            xid_events=self._xids(handle, index, xid_wait_ms, missing, where),
            processes=self._processes(opt),
            not_supported=missing,
        )

    def _ecc(self, handle: Any, opt: Callable[..., Any]) -> EccErrors | None:
        nv = self._nvml
        mode = opt("ecc", nv.nvmlDeviceGetEccMode)
        if mode is None:
            return None
        if not mode[0]:
            return EccErrors(enabled=False)
        counts = {}
        for counter, counter_name in (
            (nv.NVML_VOLATILE_ECC, "volatile"),
            (nv.NVML_AGGREGATE_ECC, "aggregate"),
        ):
            for kind, kind_name in (
                (nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"),
                (nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected"),
            ):
                key = f"{counter_name}_{kind_name}"
                counts[key] = opt(f"ecc_{key}", nv.nvmlDeviceGetTotalEccErrors, kind, counter)
        return EccErrors(enabled=True, **counts)

    def _retired_pages(self, handle: Any, opt: Callable[..., Any]) -> RetiredPages | None:
        nv = self._nvml
        single = opt(
            "retired_pages",
            nv.nvmlDeviceGetRetiredPages,
            nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
        )
        if single is None:
            return None
        double = opt(
            "retired_pages",
            nv.nvmlDeviceGetRetiredPages,
            nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
        )
        pending = opt("retired_pages_pending", nv.nvmlDeviceGetRetiredPagesPendingStatus)
        return RetiredPages(
            multiple_single_bit=len(single), double_bit=len(double or []), pending=bool(pending)
        )

    def _remapped_rows(self, opt: Callable[..., Any]) -> RemappedRows | None:
        rows = opt("remapped_rows", self._nvml.nvmlDeviceGetRemappedRows)
        if rows is None:
            return None
        corrected, uncorrected, pending, failed = rows
        return RemappedRows(
            corrected=corrected, uncorrected=uncorrected, pending=bool(pending), failed=bool(failed)
        )

    def _processes(self, opt: Callable[..., Any]) -> list[GpuProcess]:
        nv = self._nvml
        found: list[GpuProcess] = []
        for kind, fn in (
            ("compute", nv.nvmlDeviceGetComputeRunningProcesses),
            ("graphics", nv.nvmlDeviceGetGraphicsRunningProcesses),
        ):
            for proc in opt(f"{kind}_processes", fn) or []:
                used = proc.usedGpuMemory
                found.append(GpuProcess(pid=int(proc.pid), kind=kind, used_memory_bytes=used))
        return found

    def _xids(
        self, handle: Any, index: int, wait_ms: int, missing: list[str], where: str
    ) -> list[XidEvent] | None:
        nv = self._nvml
        event_set = self._call("create an event set", where, nv.nvmlEventSetCreate)
        try:
            try:
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, event_set)
            except _ABSENT:
                missing.append("xid_events")
                return None
            except pynvml.NVMLError as exc:
                raise _translate(exc, "listen for XID events", where) from exc
            events: list[XidEvent] = []
            timeout = wait_ms
            while len(events) < 100:
                try:
                    data = nv.nvmlEventSetWait_v2(event_set, timeout)
                except pynvml.NVMLError_Timeout:
                    break  # nothing (more) happened while listening
                except pynvml.NVMLError as exc:
                    raise _translate(exc, "read XID events", where) from exc
                if data.eventType & nv.nvmlEventTypeXidCriticalError:
                    events.append(XidEvent(xid=int(data.eventData), gpu_index=index))
                timeout = 0
            return events
        finally:
            with suppress(pynvml.NVMLError):  # best effort: NVML's shutdown releases it too
                nv.nvmlEventSetFree(event_set)

    def _call(self, what: str, where: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            raise _translate(exc, what, where) from exc

    def _optional(
        self,
        fn: Callable[..., T],
        args: list[Any],
        name: str,
        missing: list[str] | None = None,
        where: str = "this machine",
    ) -> T | None:
        try:
            return fn(*args)
        except (*_ABSENT, pynvml.NVMLLibraryMismatchError):
            # the last: an unversioned pynvml call the installed driver is too old for
            if missing is not None and name not in missing:
                missing.append(name)
            return None
        except pynvml.NVMLError as exc:
            raise _translate(exc, f"read {name}", where) from exc


def decode_throttle_reasons(bits: int) -> list[str]:
    """Names of the set clock event reason bits; unknown bits as ``unknown_0x...``."""
    names = [name for bit, name in THROTTLE_REASONS.items() if bits & bit]
    rest = bits & ~sum(THROTTLE_REASONS)
    return names + ([f"unknown_{rest:#x}"] if rest else [])


@contextmanager
def connect(nvml: Any = None, *, source: str = "nvml") -> Iterator[NvmlClient]:
    """Initialise NVML (``nvml``: pynvml, or a stand-in) and shut it down again.

    Raises :class:`NoGpu` when the NVIDIA library or driver is missing, :class:`GpuError` when
    NVML is there but unusable (a driver/library version mismatch after an upgrade, say).
    """
    nv = pynvml if nvml is None else nvml
    try:
        nv.nvmlInit()
    except _NO_DRIVER as exc:
        raise NoGpu(f"{exc} (NVIDIA library libnvidia-ml.so.1 or kernel driver missing)") from exc
    except pynvml.NVMLError as exc:
        raise _translate(exc, "initialise", "this machine") from exc
    try:
        yield NvmlClient(nv, source)
    finally:
        with suppress(pynvml.NVMLError):  # nothing to undo: NVML's state goes with the process
            nv.nvmlShutdown()


def read_inventory(nvml: Any = None, *, source: str = "nvml", xid_wait_ms: int = 0) -> GpuInventory:
    """Read every GPU; "no GPU" (no driver, or none seen) is an inventory with the reason."""
    try:
        with connect(nvml, source=source) as client:
            return client.read(xid_wait_ms=xid_wait_ms)
    except NoGpu as exc:
        return GpuInventory(
            read_at=datetime.now(UTC), source=source, available=False, reason=exc.detail
        )


def _translate(exc: pynvml.NVMLError, what: str, where: str) -> GpuError:
    step = _NEXT_STEP.get(type(exc), "Check the GPU with 'nvidia-smi' and the kernel log.")
    return GpuError(what, where, str(exc), step, retryable=isinstance(exc, _RETRYABLE))


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


__all__ = [
    "THROTTLE_REASONS",
    "GpuInventory",
    "GpuProcess",
    "GpuReadFailure",
    "GpuReading",
    "NvmlClient",
    "connect",
    "decode_throttle_reasons",
    "read_inventory",
]
