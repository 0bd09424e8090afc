"""A files-only copy of the example stack, and sbx's own local Prefect server (UI included) in a
temporary SBX_HOME on a free port, for tests that run `sbx serve` or open the UI."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .services import free_port
from .stack import create_mount_sources

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"


def copy_files_stack(dest: Path) -> Path:
    """The example stack's files, no containers, no live Qdrant/WebUI data."""
    shutil.copytree(
        EXAMPLE,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("open-webui", "qdrant", ".sbx", "*.log"),
    )
    (dest / "data" / "qdrant" / "storage").mkdir(parents=True)
    (dest / "data" / "qdrant" / "storage" / "segment.bin").write_bytes(b"q" * 50_000)
    return create_mount_sources(dest)


@dataclass(frozen=True)
class SbxHome:
    """An SBX_HOME and the environment a `python -m sbx` subprocess runs with there."""

    home: Path
    port: int
    env: dict[str, str]

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


@contextmanager
def sbx_home(path: Path, extra: dict[str, str] | None = None) -> Iterator[SbxHome]:
    """A temporary SBX_HOME and its local Prefect server, started here as sbx starts it (the
    commands find it running), with more patience than sbx's 90 s on a crowded machine; stopped
    at the end."""
    from sbx import local_server

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {"SBX_HOME": str(path), "SBX_SERVER_PORT": str(port), "COLUMNS": "200"}
    env |= extra or {}
    server = local_server.LocalServer(home=path, port=port)
    patience, local_server.START_TIMEOUT_S = local_server.START_TIMEOUT_S, 300.0
    try:
        server.start()
    finally:
        local_server.START_TIMEOUT_S = patience
    try:
        yield SbxHome(path, port, env)
    finally:
        server.stop()


class PrefectApi:
    """The few REST calls the tests make on a Prefect server (plain HTTP, no Prefect client)."""

    def __init__(self, api_url: str) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=30, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body or {})

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        # the server answers 503 for what a client may retry (SQLite busy while its scheduler
        # writes runs); Prefect's own client retries those too
        for attempt in range(8):
            response = self.http.request(method, path, json=body)
            if response.status_code != 503:
                break
            time.sleep(0.5 * (attempt + 1))
        response.raise_for_status()
        return response.json()

    def deployments(self) -> list[dict[str, Any]]:
        return list(self.post("/deployments/filter", {"limit": 200}))

    def flows_by_id(self) -> dict[str, str]:
        return {f["id"]: f["name"] for f in self.post("/flows/filter", {"limit": 200})}

    def wait_final(self, flow_run_id: str, timeout: float) -> dict[str, Any]:
        """The flow run once its state is final (or as it is after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.get(f"/flow_runs/{flow_run_id}")
            if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                return run
            if time.monotonic() > deadline:
                return run
            time.sleep(1)
