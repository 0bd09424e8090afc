"""The box's configuration: pydantic models, loaded from ``sbx.toml`` with ``SBX_*`` overrides.

Precedence (highest first): explicit arguments (CLI flags) > ``SBX_*`` environment variables
> ``<stack>/sbx.toml`` (or ``--config FILE``) > built-in defaults. The defaults describe a stack
laid out as in design.md, so zero configuration works. ``services`` and ``parts`` are tables keyed
by name and are merged field by field over the defaults: ``[services.worker] url = "..."``
changes only that field. Secrets never live here (see ``blocks/box.py``).
"""

from __future__ import annotations

import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from blocks.incident_config import IncidentConfig
from sbx.errors import ConfigError
from sbx.repository.retention import RetentionPolicy

DEFAULT_STACK_DIR = Path("~/sealed-box-ai/stack")
CONFIG_FILE_NAME = "sbx.toml"


class _Model(BaseModel):
    # unknown keys are typos: refuse them instead of silently ignoring the operator's intent
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceKind(StrEnum):
    OPENAI = "openai"
    QDRANT = "qdrant"
    WEBUI = "webui"
    PROXY = "proxy"
    AGENT = "agent"


class ServiceConfig(_Model):
    """One service of the stack as sbx sees it."""

    compose_service: str = Field(description="Service name in the compose file.")
    kind: ServiceKind = Field(description="What API the service speaks; picks its checks.")
    url: str | None = Field(
        default=None,
        description="Base URL to probe. Unset: derived from the container's published port.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Container port of the HTTP API; unset: the only published TCP port.",
    )
    health_path: str = Field(default="/health", description="Path that answers 2xx when healthy.")
    exposure: bool = Field(
        default=False, description="True for services meant to be reachable from outside (proxy)."
    )
    required: bool = Field(
        default=True,
        description="A required service that is not running makes status and health fail. "
        "An optional one absent from the compose file is not reported.",
    )
    enabled: bool = Field(default=True, description="False removes the service from sbx's view.")

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("health_path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path starting with '/'")
        return value


class ConsistencyMethod(StrEnum):
    COPY = "copy"  # plain copy
    IMMUTABLE = "immutable"  # hashed once, SHA256SUMS kept beside each model dir
    QDRANT_SNAPSHOT = "qdrant-snapshot"  # snapshot API, else stop-copy-start
    SQLITE_ONLINE = "sqlite-online"  # SQLite online backup API for *.db, files copied
    GROWING_LOG = "growing-log"  # copy, recording the size read of files that grow
    STOP_COPY = "stop-copy"  # stop the part's service, copy, start it again (always)


class PartConfig(_Model):
    """One part of a backup: which paths, and how they are made consistent."""

    paths: list[str] = Field(description="Paths relative to the stack directory.")
    method: ConsistencyMethod = Field(description="How the part is captured consistently.")
    include: list[str] = Field(default_factory=list, description="Glob patterns to keep (all).")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns to leave out.")
    service: str | None = Field(default=None, description="Service whose data this is.")
    enabled: bool = Field(default=True, description="False leaves the part out of backups.")

    @field_validator("paths")
    @classmethod
    def _relative_inside_stack(cls, value: list[str]) -> list[str]:
        for path in value:
            if Path(path).is_absolute() or ".." in Path(path).parts:
                raise ValueError(f"paths relative to the stack directory, without '..' ({path!r})")
        return value


class RepositoryConfig(_Model):
    location: str = Field(
        default="~/sealed-box-ai/backups/repo",
        description="Directory of the repository on the box, or s3://bucket/prefix.",
    )
    lock_stale_after_s: int = Field(
        default=60, ge=5, description="A lock whose holder stopped heartbeating this long is taken."
    )


class OffboxConfig(_Model):
    url: str | None = Field(default=None, description="s3://bucket/prefix for off-box copies.")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint; unset: AWS_ENDPOINT_URL or AWS."
    )
    region: str | None = Field(default=None, description="Region; unset: AWS_DEFAULT_REGION.")
    storage_class: str | None = Field(default=None, description="e.g. STANDARD_IA, GLACIER_IR.")
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    credentials_block: str | None = Field(
        default=None, description="Name of a prefect-aws AwsCredentials block; unset: AWS chain."
    )
    multipart_threshold_mib: int = Field(
        default=64, ge=5, description="Objects this large (MiB) go up as multipart uploads."
    )
    part_size_mib: int = Field(default=8, ge=5, description="Part size of multipart uploads.")
    part_workers: int = Field(
        default=8, ge=1, le=64, description="Parts of one upload sent (and held in memory) at once."
    )
    secrets_block: str | None = Field(
        default=None,
        description="Name of an sbx-secrets block whose age_identity decrypts the off-box copy; "
        "unset: age_identity_file (SBX_AGE_IDENTITY_FILE) only.",
    )

    @field_validator("url")
    @classmethod
    def _is_s3_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("an s3://bucket/prefix URL")
        return value


AlertEvent = Literal["failing", "recovered", "reminder"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("failing", "recovered", "reminder")


class AlertTarget(_Model):
    block: str = Field(description="Prefect notification block as 'block-type/name'.")
    on: list[AlertEvent] = Field(
        default_factory=lambda: list(ALERT_EVENTS), description="Which changes to send."
    )


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
        description="Service -> model id /v1/models must list; unset: SERVED_MODEL_NAME or "
        "MODEL from env/<compose service>.env.",
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


class ComposeConfig(_Model):
    project: str | None = Field(
        default=None,
        description="Compose project name; unset: COMPOSE_PROJECT_NAME, the file's name:, "
        "or the stack directory's name, as docker compose decides.",
    )
    files: list[str] = Field(
        default_factory=list,
        description="Compose files relative to the stack; unset: COMPOSE_FILE or compose's "
        "defaults.",
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


LogCompression = Literal["zstd", "gzip", "none"]
LogRotationMethod = Literal["auto", "collapse-range", "punch-hole", "copytruncate"]


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


def _service(compose: str, kind: ServiceKind, **extra: Any) -> dict[str, Any]:
    return {"compose_service": compose, "kind": kind.value, **extra}


DEFAULT_SERVICES: dict[str, dict[str, Any]] = {
    "worker": _service("worker", ServiceKind.OPENAI),
    "watchdog": _service("watchdog", ServiceKind.OPENAI),
    "qdrant": _service("qdrant", ServiceKind.QDRANT, port=6333, health_path="/readyz"),
    "open-webui": _service("open-webui", ServiceKind.WEBUI, port=8080),
    "proxy": _service("proxy", ServiceKind.PROXY, exposure=True, required=False, port=443),
    "internet-research": _service(
        "internet-research", ServiceKind.AGENT, required=False, port=8080
    ),
}

DEFAULT_PARTS: dict[str, dict[str, Any]] = {
    "configs": {
        # sbx's upgrade journal and change log are kept; its caches and markers are not
        "paths": [
            "docker-compose.yml",
            "compose.yaml",
            "docker-compose.override.yml",
            "docker-compose.logging.yml",  # written by `sbx logs setup`
            "env",
            "proxy",  # the proxy's keys file and TLS certificate (docs/incident.md)
            ".sbx/journal",
            ".sbx/changelog.jsonl",
        ],
        "method": "copy",
    },
    "models": {"paths": ["data/models"], "method": "immutable", "service": "worker"},
    "qdrant": {"paths": ["data/qdrant"], "method": "qdrant-snapshot", "service": "qdrant"},
    "open-webui": {
        "paths": ["data/open-webui"],
        "method": "sqlite-online",
        "service": "open-webui",
    },
    "logs": {"paths": ["logs"], "method": "growing-log"},
    "notes": {"paths": ["notes"], "method": "copy"},
    "agent-configs": {"paths": ["agents"], "method": "copy"},
}


def _merge_tables(defaults: dict[str, dict[str, Any]], given: Any) -> Any:
    if not isinstance(given, dict):
        return given  # let validation report the wrong type
    merged = {name: dict(fields) for name, fields in defaults.items()}
    for name, fields in given.items():
        if isinstance(fields, dict) and name in merged:
            merged[name].update(fields)
        else:
            merged[name] = fields
    return merged


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


class SbxConfig(BaseSettings):
    """Everything sbx needs to know about one box; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="SBX_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    stack_dir: Path = Field(default=DEFAULT_STACK_DIR, description="The compose stack's root.")
    compose: ComposeConfig = Field(default_factory=ComposeConfig)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    parts: dict[str, PartConfig] = Field(default_factory=dict)
    repository: RepositoryConfig = Field(default_factory=RepositoryConfig)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    offbox: OffboxConfig = Field(default_factory=OffboxConfig)
    alerts: dict[str, AlertTarget] = Field(default_factory=dict)
    health: HealthConfig = Field(default_factory=HealthConfig)
    age_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="age recipients (comma-separated in SBX_AGE_RECIPIENTS)."
    )
    age_identity_file: Path | None = Field(default=None, description="age identity file.")
    probe_timeout_s: float = Field(default=3.0, gt=0, le=120, description="HTTP probe timeout.")
    restore_health_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long an in-place restore waits for a healthy stack "
        "before it swaps the previous data back.",
    )
    gpu: GpuConfig = Field(default_factory=GpuConfig, description="GPU check thresholds.")
    logs: LogsConfig = Field(default_factory=LogsConfig)
    drill: DrillConfig = Field(default_factory=DrillConfig, description="Restore drills.")
    upgrade: UpgradeConfig = Field(default_factory=UpgradeConfig)
    incident: IncidentConfig = Field(default_factory=IncidentConfig)
    model_swap_ready_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a model swap waits for the service to list the new model "
        "(weights loading) before it restores the previous env file.",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data["services"] = _merge_tables(DEFAULT_SERVICES, data.get("services", {}))
            data["parts"] = _merge_tables(DEFAULT_PARTS, data.get("parts", {}))
        return data

    @field_validator("age_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("stack_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init carries the TOML file's content merged with CLI flags (see load_config), so the
        # environment must win over it; CLI flags are re-applied on top in load_config.
        return (env_settings, init_settings)

    def enabled_services(self) -> dict[str, ServiceConfig]:
        return {name: svc for name, svc in self.services.items() if svc.enabled}

    def enabled_parts(self) -> dict[str, PartConfig]:
        return {name: part for name, part in self.parts.items() if part.enabled}


def resolve_stack_dir(stack: Path | None) -> Path:
    """The stack directory from --stack, SBX_STACK_DIR, or the default, made absolute."""
    if stack is None:
        stack = Path(os.environ.get("SBX_STACK_DIR") or DEFAULT_STACK_DIR)
    return stack.expanduser().absolute()


def load_config(stack: Path | None = None, config_file: Path | None = None) -> SbxConfig:
    """Load the configuration of the stack at ``stack`` (see module docstring for precedence).

    Raises :class:`ConfigError` naming the key, the value and what is expected.
    """
    stack_dir = resolve_stack_dir(stack)
    explicit = config_file is not None
    path = (config_file or stack_dir / CONFIG_FILE_NAME).expanduser()
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML ({exc}). Fix the syntax and run the command again."
            ) from exc
        except OSError as exc:
            raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); TOML files are "
                "UTF-8. Save it as UTF-8 and run the command again."
            ) from exc
    elif explicit:
        raise ConfigError(f"Config file {path} does not exist. Check --config.")
    source = str(path) if path.is_file() else "the environment"
    try:
        config = SbxConfig(**data)
    except ValidationError as exc:
        raise _config_error(exc, source) from exc
    except SettingsError as exc:  # an SBX_* variable of a table or list that is not JSON
        raise _env_error(exc) from exc
    if stack is not None or "stack_dir" not in data:
        # --stack (else SBX_STACK_DIR, else the default) names the stack the file sits in
        config = config.model_copy(update={"stack_dir": stack_dir})
    return config


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        expected = err["msg"].removeprefix("Value error, ")
        expected = expected[:1].lower() + expected[1:]
        if err["type"] == "extra_forbidden":
            expected = "no such key (a typo?) — see docs/configuration.md for the known keys"
        lines.append(ConfigError.for_key(source, key, err.get("input"), expected).message)
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError(f"{len(lines)} problems in the configuration:\n  " + "\n  ".join(lines))


def _env_error(exc: SettingsError) -> ConfigError:
    # pydantic-settings names the field ('error parsing value for field "services" ...'), not
    # the variable, and its cause is a JSON error: say which variable and what it must hold
    found = re.search(r'field "([^"]+)"', str(exc))
    variable = f"SBX_{found.group(1).upper()}" if found else "An SBX_* variable"
    return ConfigError(
        f"{variable} is not valid JSON ({exc.__cause__ or exc}); a table or list given as one "
        "variable must be JSON. Fix it, or set single keys with '__' (SBX_REPOSITORY__LOCATION="
        "...), then run the command again."
    )
