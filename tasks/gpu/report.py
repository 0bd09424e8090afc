"""The GPU report as rows: the Prefect table artifacts and `sbx gpu`'s table show the same cells."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.gpu.check import GpuReport

GiB = 1 << 30


def gpu_rows(report: GpuReport) -> list[dict[str, str]]:
    """One row per GPU: what it holds, how hot and busy it is, who uses it, its verdict."""
    inventory = report.inventory
    if not inventory.available:
        return [{"gpu": "—", "memory": "—", "processes": "—", "verdict": inventory.reason or ""}]
    rows = []
    for gpu in inventory.gpus:
        checks = [c for c in report.checks if c.gpu == gpu.index and c.status != "pass"]
        procs = [p for p in report.processes if p.gpu_index == gpu.index]
        used = gpu.memory_used_bytes / GiB
        rows.append(
            {
                "gpu": f"{gpu.index} {gpu.name}",
                "memory": f"{used:.1f} / {gpu.memory_total_bytes / GiB:.1f} GiB "
                f"({gpu.free_pct:.1f} % free)",
                "util": _opt(gpu.utilization_gpu_pct, "%"),
                "temp": _opt(gpu.temperature_c, "°C"),
                "power": f"{gpu.power_w:.0f} / {gpu.power_limit_w or 0:.0f} W"
                if gpu.power_w is not None
                else "—",
                "throttle": ", ".join(gpu.throttle_reasons or []) or "—",
                "processes": "; ".join(
                    f"{p.label} {(p.used_memory_bytes or 0) / GiB:.1f} GiB" for p in procs
                )
                or "—",
                "verdict": "; ".join(f"{c.status}: {c.name}" for c in checks) or "ok",
            }
        )
    for failure in inventory.failures:
        rows.append({"gpu": str(failure.index), "verdict": f"fail: {failure.message}"})
    return rows


def check_rows(report: GpuReport) -> list[dict[str, str]]:
    return [
        {
            "gpu": "—" if c.gpu is None else str(c.gpu),
            "check": c.name,
            "status": c.status,
            "message": c.message,
        }
        for c in report.checks
    ]


def summary(report: GpuReport) -> str:
    inventory = report.inventory
    if not inventory.available:
        state = "FAIL" if report.failures else "no GPU"
        return f"{state}: {inventory.reason}"
    failed = len(report.failures)
    head = f"{len(inventory.gpus)} GPU(s), driver {inventory.driver_version}"
    return head + (f": {failed} check(s) failed" if failed else ": all checks pass")


@task(name="publish-gpu-report", cache_policy=NO_CACHE)
def publish_gpu_report(report: GpuReport) -> None:
    """Keyed table artifacts, so the Artifacts page keeps the history of the readings."""
    create_table_artifact(
        table=gpu_rows(report), key="gpu-readings", description=f"GPUs — {summary(report)}"
    )
    create_table_artifact(
        table=check_rows(report), key="gpu-checks", description="GPU checks against [gpu]"
    )


def _opt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:g} {unit}"
