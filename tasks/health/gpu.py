"""The GPU family: h-gpu's report (``tasks/gpu/check.py``), one health check per GPU.

``check_gpus`` already reads NVML, names processes by compose service and judges ``[gpu]``
thresholds; here each GPU becomes ``gpu:<index>`` (failing when any of its checks fails, warnings
shown in the observation) with its memory and utilisation as measures for metrics. A box
without an NVIDIA driver is one ``gpu:nvml`` information; an unusable NVML a failing one.
"""

from __future__ import annotations

from blocks.config import SbxConfig
from tasks.health.checks import MultiCheck, Outcome, failing, info, ok

GiB = 1 << 30
NEXT_STEP = "See every reading with 'sbx gpu'; thresholds are under [gpu] in sbx.toml."


def plan(config: SbxConfig) -> list[MultiCheck]:
    # one NVML read for every GPU, split into one check per GPU
    return [MultiCheck("gpu", lambda: observe_all(config), crash_target="nvml")]


def observe_all(config: SbxConfig) -> list[tuple[str, Outcome]]:
    """(target, outcome) per GPU from one reading; ``nvml`` when there is no GPU to list."""
    from tasks.gpu.check import check_gpus

    report = check_gpus.fn(config)
    inventory = report.inventory
    if not inventory.available or not inventory.gpus:
        bad = [c for c in report.checks if c.status == "fail"]
        if bad:
            return [("nvml", failing("; ".join(c.message for c in bad), NEXT_STEP))]
        return [("nvml", info(f"no GPU: {inventory.reason or 'NVML lists none'}"))]
    outcomes = []
    for gpu in inventory.gpus:
        mine = [c for c in report.checks if c.gpu == gpu.index]
        measures = {
            "gpu_memory_used_bytes": float(gpu.memory_used_bytes),
            "gpu_memory_total_bytes": float(gpu.memory_total_bytes),
        }
        if gpu.utilization_gpu_pct is not None:
            measures["gpu_utilization_percent"] = float(gpu.utilization_gpu_pct)
        if gpu.temperature_c is not None:
            measures["gpu_temperature_celsius"] = float(gpu.temperature_c)
        seen = (
            f"{gpu.name}: {gpu.memory_used_bytes / GiB:.1f} of {gpu.memory_total_bytes / GiB:.1f}"
            f" GiB used"
            + (f", {gpu.utilization_gpu_pct} % busy" if gpu.utilization_gpu_pct is not None else "")
            + (f", {gpu.temperature_c} °C" if gpu.temperature_c is not None else "")
        )
        fails = [f"{c.name}: {c.message}" for c in mine if c.status == "fail"]
        warns = [f"{c.name}: {c.message}" for c in mine if c.status in ("warn", "unknown")]
        if fails:
            outcomes.append(
                (str(gpu.index), failing(f"{seen}; {'; '.join(fails)}", NEXT_STEP, **measures))
            )
        else:
            note = f"; {'; '.join(warns)}" if warns else ""
            outcomes.append((str(gpu.index), ok(seen + note, **measures)))
    read_failures = [f"GPU {f.index}: {f.message}" for f in inventory.failures]
    if read_failures:
        outcomes.append(("read", failing("; ".join(read_failures), NEXT_STEP)))
    return outcomes
