"""Boxes of a fleet on one machine: each a files-only copy of the example stack, its own
SBX_HOME, repository and ``sbx serve --box NAME`` worker, all against one shared server.

The boxes serve a trimmed copy of the project's prefect.yaml (only the deployments a test names,
entrypoints made absolute so the copy can live in a temporary directory): registering sixteen
deployments per box would cost a test more than the runs it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from .local_prefect import copy_files_stack
from .services import log_tail, stop_process, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SBX = [sys.executable, "-m", "sbx"]


def trimmed_prefect_yaml(dest: Path, keep: dict[str, dict[str, Any]]) -> Path:
    """The project's deployments named in ``keep`` (name -> parameters to set), entrypoints
    absolute, written to ``dest``."""
    data = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    kept = []
    for entry in data["deployments"]:
        if entry["name"] in keep:
            entry["entrypoint"] = str(PROJECT_ROOT / entry["entrypoint"])
            entry["parameters"] = {**(entry.get("parameters") or {}), **keep[entry["name"]]}
            kept.append(entry)
    dest.write_text(yaml.safe_dump({"deployments": kept}), encoding="utf-8")
    return dest


@dataclass
class FleetBox:
    """One box: its stack, repository, the environment its commands and worker run with."""

    name: str
    root: Path
    stack: Path
    repo: Path
    env: dict[str, str]
    log: Path
    worker: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def sbx(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SBX, *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def start_worker(self, prefect_yaml: Path) -> None:
        """``sbx serve --box NAME`` in the background (its log appended to ``self.log``)."""
        with self.log.open("ab") as out:
            self.worker = subprocess.Popen(
                [*SBX, "serve", "--box", self.name, "--prefect-yaml", str(prefect_yaml)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
            )  # fmt: skip

    def wait_worker(self, starts: int = 1, timeout: float = 300) -> None:
        """Until the worker's log says it started for the ``starts``-th time."""
        worker = self.worker
        assert worker is not None
        started = wait_until(
            lambda: self.log.read_text().count("started!") >= starts or worker.poll() is not None,
            timeout=timeout,
            interval=0.5,
        )
        assert started and worker.poll() is None, log_tail(self.log, 40)

    def kill_worker(self) -> None:
        """SIGKILL, as a box losing power: nothing is deregistered, nothing paused."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait()

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop_process(self.worker, timeout=30)


def make_box(root: Path, name: str, api_url: str, extra: dict[str, str] | None = None) -> FleetBox:
    """A box named ``name`` under ``root``: stack (its notes say its name), ``sbx init`` with a
    local repository, an environment pointing at ``api_url``. No worker yet."""
    root.mkdir(parents=True)
    stack = copy_files_stack(root / "stack")
    (stack / "notes" / "box.txt").write_text(f"box {name}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env |= {
        "SBX_HOME": str(root / "sbx-home"),
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # a worker that polls every 2 s instead of 10: a run starts sooner
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "COLUMNS": "200",
        **(extra or {}),
    }
    box = FleetBox(name, root, stack, root / "repo", env, root / "serve.log")
    done = box.sbx("init", "--stack", str(stack), "--repo", str(box.repo))
    assert done.returncode == 0, done.stdout + done.stderr
    return box
