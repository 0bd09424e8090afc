"""The box's state at backup time: what was running, from which images, serving which models.

Recorded in every manifest (design invariant 3) so a restore or an incident review knows the
release the data belongs to. Env files are read for model ids and quantization only: values of
keys that look secret are never read into the record, whatever their name says otherwise.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sqlite3
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
    version: str | None  # what the running image says it is (the one writing the data)
    # the version of the data itself, where it can be read: Open WebUI's alembic revision
    # (``alembic_version.version_num`` in webui.db), Qdrant's version (its API's ``version``)
    data_version: str | None = None


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
            running = _version(probe, svc.url, kind) if svc.url and svc.ok else None
            services[svc.name] = ServiceRelease(
                state=svc.state,
                image=svc.image,
                digest=svc.digest,
                version=running,
                data_version=_data_version(config, svc.name, kind, running),
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


def _data_version(
    config: SbxConfig, service: str, kind: ServiceKind | None, running: str | None
) -> str | None:
    if kind is ServiceKind.QDRANT:
        return running  # Qdrant's storage and snapshots follow its version (same or next minor)
    if kind is not ServiceKind.WEBUI:
        return None
    for part in config.parts.values():
        if part.service != service:
            continue
        for rel in part.paths:
            revision = alembic_revision(config.stack_dir / rel / "webui.db")
            if revision:
                return revision
    return None


def alembic_revision(database: Path) -> str | None:
    """``version_num`` of ``alembic_version`` in a SQLite database (read-only), or None."""
    if not database.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # no such table (a pre-alembic Open WebUI), locked, not a database
        return None
    return str(row[0]) if row else None


def read_version(probe: HttpProbe, url: str, kind: ServiceKind | None) -> str | None:
    """What a running service says its version is (None when it does not say)."""
    return _version(probe, url, kind)


def _version(probe: HttpProbe, url: str, kind: ServiceKind | None) -> str | None:
    path = VERSION_PATHS.get(kind) if kind else None
    if path is None:
        return None
    try:
        answer = probe.get_json(url + path)
    except HttpError:  # a version is nice to have, never a reason to fail a backup
        return None
    return str(answer.get("version")) if isinstance(answer, dict) and "version" in answer else None
