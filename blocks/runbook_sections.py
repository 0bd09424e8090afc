"""The sections of the box's configuration that tune one runbook each: ``[health]``, ``[gpu]``,
``[restore]``, ``[drill]``, ``[logs]`` and ``[upgrade]`` (thresholds, windows, what is kept).

Like the sections of :mod:`blocks.sections` (the stack, its parts and where backups go), each is
one pydantic model, gathered by :class:`blocks.config.SbxConfig` and imported from there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field, field_validator

from blocks.sections import _Model

LogCompression = Literal["zstd", "gzip", "none"]
LogRotationMethod = Literal["auto", "collapse-range", "punch-hole", "copytruncate"]


class HealthConfig(_Model):
    """Thresholds and outputs of the health checks (``sbx health``, every 5 minutes)."""

    rpo_hours: float = Field(
        default=26.0, gt=0, description="The newest snapshot may be this old (recovery point)."
    )
    reminder_hours: float = Field(
        default=4.0, gt=0, description="Repeat an alert this often while a check keeps failing."
    )
    completion_timeout_s: float = Field(
        default=15.0, gt=0, le=300, description="Timeout of the one-token chat completion."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Service -> model id /v1/models must list; unset: the service's "
        "--served-model-name (else --model) argument, else SERVED_MODEL_NAME or MODEL from "
        "env/<compose service>.env.",
    )
    disk_min_free_percent: float = Field(
        default=10.0, ge=0, le=100, description="Free space below this share of a disk fails."
    )
    disk_min_free_gib: float = Field(
        default=5.0, ge=0, description="Free space below this many GiB fails."
    )
    cpu_max_percent: float = Field(
        default=95.0, gt=0, le=100, description="A container using more of the box's CPUs fails."
    )
    memory_max_percent: float = Field(
        default=90.0,
        gt=0,
        le=100,
        description="A container above this share of its memory "
        "limit (the box's memory when unlimited) fails.",
    )
    tls_min_days: float = Field(
        default=14.0, ge=0, description="The proxy's certificate must be valid this much longer."
    )
    verdict_log: str = Field(
        default="logs/watchdog-verdicts.jsonl",
        description="The watchdog's verdict log (JSON lines), relative to the stack or absolute.",
    )
    verdict_tags: list[str] = Field(
        default_factory=lambda: [
            "prompt-injection",
            "jailbreak",
            "data-exfiltration",
            "credential-leak",
            "malware",
        ],
        description="High-risk verdict tags.",
    )
    verdict_window_min: float = Field(
        default=15.0, gt=0, description="Window in which repeated high-risk tags are counted."
    )
    verdict_max_repeats: int = Field(
        default=3, ge=1, description="This many verdicts with one high-risk tag in the window fail."
    )
    metrics_file: Path | None = Field(
        default=None,
        description="Prometheus textfile-collector file written after each run; unset: none.",
    )


class GpuConfig(_Model):
    """Thresholds of the GPU checks (`sbx gpu`, the health flow). A box without an NVIDIA driver
    reports "no GPU" and passes."""

    min_free_vram_pct: float | None = Field(
        default=3.0,
        ge=0,
        le=100,
        description="Fail when a GPU's free memory is below this share of its total. vLLM takes "
        "gpu_memory_utilization (0.9) of the card at start, so ~10 % free is normal. None: off.",
    )
    min_free_vram_mib: int | None = Field(
        default=None, ge=0, description="Fail when a GPU's free memory is below this. None: off."
    )
    max_temperature_c: float = Field(
        default=85.0, gt=0, description="Fail at or above this GPU core temperature."
    )
    pegged_utilization_pct: float = Field(
        default=95.0,
        gt=0,
        le=100,
        description="Fail when utilisation is at least this while no request runs on any "
        "serving service (vllm:num_requests_running from their /metrics): a stuck kernel.",
    )
    serving_services: list[str] | None = Field(
        default=None,
        description="Services whose /metrics say whether requests run; None: every enabled "
        "service of kind openai.",
    )
    warn_throttle_reasons: list[str] = Field(
        default_factory=lambda: [
            "hw_slowdown",
            "hw_thermal_slowdown",
            "hw_power_brake_slowdown",
            "sw_thermal_slowdown",
        ],
        description="Clock-throttle reasons reported as warnings (never failures).",
    )
    xid_wait_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="How long to listen for XID critical-error events per reading (NVML shows "
        "only XIDs that happen while it listens; past ones are in the kernel log).",
    )


class RestoreConfig(_Model):
    """In-place restores keep the data they replace under ``<stack>/.sbx/restores/<time>/``."""

    keep_days: int = Field(
        default=14,
        ge=0,
        description="Kept restores older than this are removed at the end of each in-place "
        "restore (never the one just made) and by 'sbx restore cleanup'.",
    )


class DrillConfig(_Model):
    """Restore drills (``sbx drill``, the weekly deployment): a snapshot brought up beside the
    live stack as its own compose project."""

    health_timeout_s: float = Field(
        default=180.0, gt=0, description="How long the scratch stack may take to become healthy."
    )
    scratch_dir: Path | None = Field(
        default=None,
        description="Where scratch copies are restored; unset: <stack>/.sbx/drills. Needs room "
        "for one full restore; removed after every drill.",
    )
    gpu_services: list[str] | None = Field(
        default=None,
        description="Compose services the drill does not start a second time (a second vLLM "
        "beside the live one does not fit a one-GPU box): their models are checked by sha256 "
        "and restored consumers reach the live service, read-only. Unset: the services the "
        "compose model gives a GPU (deploy.resources.reservations.devices with the gpu "
        "capability or the nvidia driver, gpus:, runtime: nvidia); [] for none.",
    )
    start_gpu_services: bool = Field(
        default=False,
        description="Start the GPU services in the scratch project too, where the box has room "
        "for a second copy (several GPUs, or small models).",
    )


class LogsConfig(_Model):
    """Rotation of the stack's own log files (``sbx logs rotate``, the daily deployment)."""

    globs: list[str] = Field(
        default_factory=lambda: ["logs/**/*.log"],
        description="Live log files, glob patterns relative to the stack ('**' recurses).",
    )
    max_size: pydantic.ByteSize = Field(
        default=pydantic.ByteSize(100 * 1024 * 1024),
        description="Rotate a file once it holds this much (e.g. '100MiB', '512KiB').",
    )
    max_age_h: float = Field(
        default=24.0, gt=0, description="Rotate a non-empty file this many hours after the last."
    )
    keep: int = Field(default=14, ge=1, description="Rotated files kept per log; older deleted.")
    compress: LogCompression = Field(
        default="zstd", description="Compression of rotated files: zstd, gzip (zcat) or none."
    )
    method: LogRotationMethod = Field(
        default="auto",
        description="How lines are cut out of the live file: auto picks the best lossless "
        "method the filesystem has; copytruncate (lossy, like logrotate) only when named.",
    )
    docker_max_size: str = Field(
        default="10m", description="json-file max-size written by 'sbx logs setup'."
    )
    docker_max_file: int = Field(
        default=3, ge=1, description="json-file max-file written by 'sbx logs setup'."
    )

    @field_validator("globs")
    @classmethod
    def _globs_inside_stack(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                raise ValueError(f"patterns relative to the stack, without '..' ({pattern!r})")
        return value

    @field_validator("docker_max_size")
    @classmethod
    def _docker_size(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*[kmg]?", value):
            raise ValueError("a Docker size such as '10m', '500k' or '1g'")
        return value


class UpgradeConfig(_Model):
    """The health gate of `sbx upgrade` / `sbx rollback` (docs/upgrade.md)."""

    soak_window_s: float = Field(
        default=600.0,
        gt=0,
        description="How long the changed services get to pass the gate (model warm-up included).",
    )
    passes: int = Field(
        default=3, ge=1, description="Consecutive passing gate rounds needed within the window."
    )
    interval_s: float = Field(default=5.0, gt=0, description="Pause between gate rounds.")
    snapshot_data: bool = Field(
        default=True,
        description="Back up the changed services' data parts before switching (tagged "
        "pre-upgrade), so a rollback returns the data with the image.",
    )
    keep_pre_upgrade_days: int = Field(
        default=14,
        ge=0,
        description="Prune keeps a pre-upgrade snapshot this many days (and always while its "
        "journal entry is open).",
    )
