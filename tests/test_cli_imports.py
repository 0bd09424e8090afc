"""Read-only commands answer at once (#20 deliverable 7): they import neither Prefect nor an SDK
they do not use. Timings are in benchmarks/cli.py; this checks what makes them fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage
from tasks.changelog import append_change

PROBE = """
import json, sys
sys.argv = ["sbx", *json.loads(sys.argv[1])]
from sbx.cli import main
try:
    main()
except SystemExit:
    pass
loaded = {m.split(".")[0] for m in sys.modules}
heavy = sorted(loaded & {"prefect", "docker", "boto3", "qdrant_client"})
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _heavy(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
        env={**env, "SBX_HOME": "/nonexistent-sbx-home"}, timeout=60,
    )  # fmt: skip
    line = [x for x in done.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, done.stderr
    return [m for m in line[-1].removeprefix("HEAVY=").split(",") if m]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    repository = Repository.open_or_init(LocalStorage(tmp_path / "repo"))
    with repository.writer(command="test") as writer:
        writer.begin_snapshot(previous=None, tags={}, stack_dir=source)
        with writer.part("configs", "copy") as part:
            part.add_tree(source, "configs")
        writer.commit(box={})
    return tmp_path / "repo"


def test_read_only_commands_import_no_prefect_and_no_sdk(repo: Path, tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    append_change(stack, action="config", target="logs", before=None, after={"file": "x"})
    assert _heavy("--help") == []
    assert _heavy("snapshots", "--repo", str(repo)) == []  # was: prefect (4 s)
    assert _heavy("changelog", "--stack", str(stack)) == []
    assert _heavy("diff", "latest", "latest", "--repo", str(repo)) == []
    assert _heavy("server", "status") == []
