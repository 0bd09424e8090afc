"""The box's state at backup time: what was running, from which images, serving which models.

Recorded in every manifest (design invariant 3) so a restore or an incident review knows the
release the data belongs to. Env files are read for model ids and quantization only: values of
keys that look secret are never read into the record, whatever their name says otherwise.
"""

from __future__ import annotations

import hashlib
import platform
import re
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import HttpError
from tasks.clients.compose import COMPOSE_FILE_NAMES
from tasks.clients.http_probe import HttpProbe
from tasks.status import StackStatus

MODEL_KEYS = re.compile(r"(MODEL|QUANT|MAX_MODEL_LEN|DTYPE)", re.IGNORECASE)
SECRET_KEYS = re.compile(r"(KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH)", re.IGNORECASE)
VERSION_PATHS = {
    ServiceKind.OPENAI: "/version",
    ServiceKind.WEBUI: "/api/version",
    ServiceKind.QDRANT: "/",
}


class ServiceRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: str
    image: str | None
    digest: str | None
    version: str | None


class BoxState(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    sbx_version: str
    project: str
    compose_files: dict[str, str]  # relative path -> sha256
    services: dict[str, ServiceRelease]
    models: dict[str, dict[str, str]]  # env file stem -> model-related settings


def read_box_state(config: SbxConfig, status: StackStatus) -> BoxState:
    """Describe the box from its stack status (no extra Docker calls) plus files and versions."""
    stack = config.stack_dir
    compose_files = {
        name: hashlib.sha256((stack / name).read_bytes()).hexdigest()
        for name in (
            *COMPOSE_FILE_NAMES,
            *config.compose.files,
            "docker-compose.override.yml",
            "compose.override.yaml",
        )
        if (stack / name).is_file()
    }
    services = {}
    with HttpProbe(timeout_s=config.probe_timeout_s) as probe:
        for svc in status.services:
            kind = ServiceKind(svc.kind) if svc.kind in ServiceKind.__members__.values() else None
            services[svc.name] = ServiceRelease(
                state=svc.state,
                image=svc.image,
                digest=svc.digest,
                version=_version(probe, svc.url, kind) if svc.url and svc.ok else None,
            )
    return BoxState(
        host=platform.node(),
        sbx_version=version("sbx"),
        project=status.project,
        compose_files=compose_files,
        services=services,
        models=read_model_settings(stack / "env"),
    )


def read_model_settings(env_dir: Path) -> dict[str, dict[str, str]]:
    """Model ids, quantization and context length from env/*.env — never secret values."""
    models: dict[str, dict[str, str]] = {}
    for path in sorted(env_dir.glob("*.env")) if env_dir.is_dir() else []:
        settings = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            key = key.strip()
            if not sep or key.startswith("#") or SECRET_KEYS.search(key):
                continue
            if MODEL_KEYS.search(key):
                settings[key] = redact_url(value.strip().strip("'\""))
        if settings:
            models[path.stem] = settings
    return models


_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
_SECRET_QUERY = re.compile(
    r"(?<=[?&])([^=&#]*(?:KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|SIG)[^=&#]*)=[^&#]*", re.I
)


def redact_url(value: str) -> str:
    """A setting with any credentials of a URL in it (``https://user:pass@host``,
    ``?token=...``) replaced by ``***``: a model source URL is a model setting by its name."""
    value = _USERINFO.sub("***@", value)
    return _SECRET_QUERY.sub(r"\1=***", value)


def _version(probe: HttpProbe, url: str, kind: ServiceKind | None) -> str | None:
    path = VERSION_PATHS.get(kind) if kind else None
    if path is None:
        return None
    try:
        answer = probe.get_json(url + path)
    except HttpError:  # a version is nice to have, never a reason to fail a backup
        return None
    return str(answer.get("version")) if isinstance(answer, dict) and "version" in answer else None
