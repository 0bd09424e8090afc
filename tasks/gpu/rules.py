"""Judging GPU readings against ``[gpu]`` in sbx.toml: pure functions, tested directly.

Each GPU gets a check per threshold (vram-headroom, temperature, pegged-while-idle) and one per
hardware complaint it has (throttle, memory-errors, xid). ``fail`` fails the run; ``warn`` and
``unknown`` (a check that could not be decided, e.g. vLLM's /metrics did not answer) are shown.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from blocks.config import GpuConfig
from tasks.clients.gpu import GpuInventory, GpuReading
from tasks.clients.vllm_metrics import ServingLoad

GiB = 1 << 30
Status = Literal["pass", "warn", "fail", "unknown", "info"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuProcessOwner(_Frozen):
    """A GPU process and, where it could be found, its container and compose service."""

    gpu_index: int
    pid: int
    kind: str
    used_memory_bytes: int | None
    container: str | None = None
    service: str | None = None
    project: str | None = None

    @property
    def label(self) -> str:
        who = self.service or self.container or "pid"
        return f"{who} (pid {self.pid})" if who != "pid" else f"pid {self.pid}"


class GpuCheck(_Frozen):
    name: str  # vram-headroom, temperature, pegged-while-idle, throttle, memory-errors, xid, ...
    gpu: int | None
    status: Status
    message: str


def evaluate(
    inventory: GpuInventory,
    processes: list[GpuProcessOwner],
    serving: list[ServingLoad],
    limits: GpuConfig,
) -> list[GpuCheck]:
    """Judge the readings (pure). No GPU is one "info" check; an unreadable GPU fails."""
    if not inventory.available:
        return [
            GpuCheck(name="nvml", gpu=None, status="info", message=f"no GPU: {inventory.reason}")
        ]
    checks = [
        GpuCheck(name="read", gpu=f.index, status="fail", message=f.message)
        for f in inventory.failures
    ]
    for gpu in inventory.gpus:
        mine = [p for p in processes if p.gpu_index == gpu.index]
        checks += [
            _headroom(gpu, mine, limits),
            _temperature(gpu, limits),
            _pegged(gpu, serving, limits),
            *_health(gpu, limits),
        ]
    return checks


def _headroom(gpu: GpuReading, procs: list[GpuProcessOwner], limits: GpuConfig) -> GpuCheck:
    free_mib = gpu.memory_free_bytes // (1 << 20)
    seen = (
        f"{gpu.free_pct:.1f} % free ({_gib(gpu.memory_free_bytes)} of "
        f"{_gib(gpu.memory_total_bytes)})"
    )
    low = []
    if limits.min_free_vram_pct is not None and gpu.free_pct < limits.min_free_vram_pct:
        low.append(f"below {limits.min_free_vram_pct:g} %")
    if limits.min_free_vram_mib is not None and free_mib < limits.min_free_vram_mib:
        low.append(f"below {limits.min_free_vram_mib} MiB")
    if not low:
        return GpuCheck(name="vram-headroom", gpu=gpu.index, status="pass", message=seen)
    users = sorted(procs, key=lambda p: -(p.used_memory_bytes or 0))[:3]
    top = ", ".join(f"{p.label} {_gib(p.used_memory_bytes or 0)}" for p in users) or "none listed"
    return GpuCheck(
        name="vram-headroom",
        gpu=gpu.index,
        status="fail",
        message=f"{seen}, {' and '.join(low)}; largest users: {top}. Lower vLLM's "
        "gpu_memory_utilization or max-model-len, or stop what else holds GPU memory.",
    )


def _temperature(gpu: GpuReading, limits: GpuConfig) -> GpuCheck:
    if gpu.temperature_c is None:
        return GpuCheck(name="temperature", gpu=gpu.index, status="info", message="not reported")
    hot = gpu.temperature_c >= limits.max_temperature_c
    return GpuCheck(
        name="temperature",
        gpu=gpu.index,
        status="fail" if hot else "pass",
        message=f"{gpu.temperature_c} °C"
        + (
            f", at or above {limits.max_temperature_c:g} °C: check cooling and airflow"
            if hot
            else ""
        ),
    )


def _pegged(gpu: GpuReading, serving: list[ServingLoad], limits: GpuConfig) -> GpuCheck:
    util = gpu.utilization_gpu_pct

    def check(status: Status, message: str) -> GpuCheck:
        return GpuCheck(name="pegged-while-idle", gpu=gpu.index, status=status, message=message)

    if util is None:
        return check("info", "utilisation not reported")
    if util < limits.pegged_utilization_pct:
        return check("pass", f"utilisation {util} %")
    unknown = [s for s in serving if not s.known]
    if not serving or unknown:
        why = "; ".join(f"{s.service}: {s.error}" for s in unknown) or "no serving service"
        return check(
            "unknown",
            f"utilisation {util} %; whether requests run could not be read ({why}), so the "
            "pegged-while-idle check was not possible",
        )
    running = sum(s.requests_running or 0 for s in serving)
    names = ", ".join(s.service for s in serving)
    if running > 0:
        return check("pass", f"utilisation {util} % serving {running:g} running request(s)")
    return check(
        "fail",
        f"utilisation {util} % (≥ {limits.pegged_utilization_pct:g} %) while no request runs on "
        f"{names} (vllm:num_requests_running = 0): a stuck kernel or a process outside the "
        "stack. Check the GPU's processes ('sbx gpu') and restart the stuck one.",
    )


def _health(gpu: GpuReading, limits: GpuConfig) -> list[GpuCheck]:
    """Throttling, memory errors and XIDs: the hardware's own complaints."""
    checks = []
    throttled = [r for r in gpu.throttle_reasons or [] if r in limits.warn_throttle_reasons]
    if throttled:
        checks.append(
            GpuCheck(
                name="throttle",
                gpu=gpu.index,
                status="warn",
                message=f"clocks held back: {', '.join(throttled)}; check cooling and power",
            )
        )
    bad, warn = [], []
    if gpu.ecc and gpu.ecc.volatile_uncorrected:
        bad.append(f"{gpu.ecc.volatile_uncorrected} uncorrectable ECC error(s) since driver load")
    if gpu.remapped_rows and gpu.remapped_rows.failed:
        bad.append("a row remap failed")
    if gpu.remapped_rows and gpu.remapped_rows.pending:
        warn.append("a row remap waits for a GPU reset")
    if gpu.retired_pages and gpu.retired_pages.pending:
        warn.append("a page retirement waits for a driver reload")
    if bad or warn:
        checks.append(
            GpuCheck(
                name="memory-errors",
                gpu=gpu.index,
                status="fail" if bad else "warn",
                message="; ".join(bad + warn) + ". Drain the GPU, then reset it ('nvidia-smi -r') "
                "or reboot; see 'nvidia-smi -q -d ECC,ROW_REMAPPER'.",
            )
        )
    if gpu.xid_events:
        xids = ", ".join(str(e.xid) for e in gpu.xid_events)
        checks.append(
            GpuCheck(
                name="xid",
                gpu=gpu.index,
                status="fail",
                message=f"XID critical error(s) {xids} while listening; see 'dmesg | grep -i xid' "
                "and NVIDIA's XID catalogue for the action",
            )
        )
    return checks


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"
