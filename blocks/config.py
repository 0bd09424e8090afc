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
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from blocks.history import HistoryConfig
from blocks.home import named_stack
from blocks.incident_config import IncidentConfig
from blocks.runbook_sections import (
    DrillConfig,
    GpuConfig,
    HealthConfig,
    LogCompression,
    LogRotationMethod,
    LogsConfig,
    RestoreConfig,
    UpgradeConfig,
)
from blocks.sections import (
    ALERT_EVENTS,
    AlertEvent,
    AlertTarget,
    ComposeConfig,
    ConsistencyMethod,
    OffboxConfig,
    PartConfig,
    RepositoryConfig,
    ServiceConfig,
    ServiceKind,
)
from sbx.errors import ConfigError
from sbx.repository.retention import RetentionPolicy

DEFAULT_STACK_DIR = Path("~/sealed-box-ai/stack")
CONFIG_FILE_NAME = "sbx.toml"


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
            ".sbx/upgrade/journal.jsonl",  # closed entries (tasks/upgrade/journal.py)
            ".sbx/upgrade/pins.yml",  # the digests upgrades pinned
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
    # filled from the compose model (tasks/backup/sources.py): bind mounts inside the stack that
    # no part above covers, bind mounts and files outside the stack, named volumes
    "mounts": {"paths": [], "method": "copy"},
    "outside": {"paths": [], "method": "copy"},
    "volumes": {"paths": [], "method": "docker-volume"},
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


class SbxConfig(BaseSettings):
    """Everything sbx needs to know about one box; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="SBX_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    stack_dir: Path = Field(default=DEFAULT_STACK_DIR, description="The compose stack's root.")
    box: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="This box's name in a fleet (SBX_BOX; 'sbx serve --box' sets it for its "
        "runs): its secrets are the sbx-secrets-<box> block and no other.",
    )
    compose: ComposeConfig = Field(default_factory=ComposeConfig)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    parts: dict[str, PartConfig] = Field(default_factory=dict)
    repository: RepositoryConfig = Field(default_factory=RepositoryConfig)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    offbox: OffboxConfig = Field(default_factory=OffboxConfig)
    alerts: dict[str, AlertTarget] = Field(default_factory=dict)
    health: HealthConfig = Field(default_factory=HealthConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    age_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="age recipients (comma-separated in SBX_AGE_RECIPIENTS)."
    )
    age_identity_file: Path | None = Field(default=None, description="age identity file.")
    probe_timeout_s: float = Field(default=3.0, gt=0, le=120, description="HTTP probe timeout.")
    qdrant_snapshot_stall_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A Qdrant snapshot download that moves less than 1 MiB in this many seconds "
        "(headers included) is abandoned and its partial file removed.",
    )
    restore_health_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long an in-place restore waits for a healthy stack "
        "before it swaps the previous data back.",
    )
    restore: RestoreConfig = Field(default_factory=RestoreConfig, description="In-place restores.")
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
    """The stack directory from --stack, SBX_STACK_DIR, the stack ``sbx init`` named
    (blocks/home.py), or the default, made absolute."""
    if stack is None:
        env = os.environ.get("SBX_STACK_DIR")
        stack = Path(env) if env else (named_stack() or DEFAULT_STACK_DIR)
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


# the sections are imported from here by the rest of sbx
__all__ = [
    "ALERT_EVENTS",
    "CONFIG_FILE_NAME",
    "DEFAULT_PARTS",
    "DEFAULT_SERVICES",
    "DEFAULT_STACK_DIR",
    "AlertEvent",
    "AlertTarget",
    "ComposeConfig",
    "ConsistencyMethod",
    "DrillConfig",
    "GpuConfig",
    "HealthConfig",
    "IncidentConfig",
    "LogCompression",
    "LogRotationMethod",
    "LogsConfig",
    "OffboxConfig",
    "PartConfig",
    "RepositoryConfig",
    "RestoreConfig",
    "RetentionPolicy",
    "SbxConfig",
    "ServiceConfig",
    "ServiceKind",
    "UpgradeConfig",
    "load_config",
    "resolve_stack_dir",
]
