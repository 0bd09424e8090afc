"""GPU runbook step: read every NVIDIA GPU, judge the readings, report (every 5 minutes)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.runbook import flow_config, run_name
from sbx.errors import GpuThresholdFailed
from tasks.gpu.check import GpuReport, check_gpus
from tasks.gpu.report import publish_gpu_report, summary


@flow(name="inspect-gpus", flow_run_name=lambda: run_name("gpu"), log_prints=False)
def inspect_gpus(stack: str | None = None, config_file: str | None = None) -> GpuReport:
    """Read every NVIDIA GPU — memory, utilisation, temperature, throttling, ECC, XIDs, and its
    processes by compose service — and judge the readings against [gpu] in sbx.toml.

    Fails naming every threshold crossed (VRAM headroom, temperature, utilisation pegged while
    no request runs, memory errors, XIDs). A box without an NVIDIA driver reports "no GPU" and
    passes.
    """
    config = flow_config(stack, config_file)
    report = check_gpus(config)
    publish_gpu_report(report)
    logger = get_run_logger()
    logger.info("%s", summary(report))
    for finding in report.findings:
        logger.warning(
            "GPU %s %s: %s — %s", finding.gpu, finding.name, finding.status, finding.message
        )
    if not report.ok:
        raise GpuThresholdFailed(
            [
                f"GPU {c.gpu} {c.name}: {c.message}" if c.gpu is not None else c.message
                for c in report.failures
            ],
            report,
        )
    return report
