"""`--json` on every command that prints a table (#20): stdout is the report as JSON and nothing
else, errors stay one line on stderr, exit codes are those without --json.

One real backup of a files-only stack (module fixture), then each command in process against
that stack and repository, as tests/repository/test_retention_cli.py runs prune. Commands with
JSON tests of their own elsewhere: health, gpu, logs rotate, upgrade, incident (their own
stacks); serve (tests/serve/test_serve.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bed.local_prefect import copy_files_stack
from faults.input_helpers import CliResult, invoke
from rich.console import Console

from sbx.repository import Repository


@dataclass(frozen=True)
class Box:
    stack: Path
    repo: Path
    place: Path
    snapshot_id: str
    env: dict[str, str]

    def sbx(self, *args: str) -> CliResult:
        return invoke(list(args), self.env)


@pytest.fixture(scope="module")
def box(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Box:
    place = tmp_path_factory.mktemp("json")
    stack = copy_files_stack(place / f"files-{place.name}")  # its own compose project name
    repo = place / "repo"
    env = {"PREFECT_API_URL": prefect_server, "SBX_HOME": str(place / "home")}
    done = invoke(["backup", "--stack", str(stack), "--repo", str(repo), "--json"], env)
    assert done.exception is None and done.exit_code == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # the whole of stdout: no snapshot id line after it
    assert report["snapshot_id"] in Repository.open(str(repo)).list_snapshots()
    assert {p["name"] for p in report["parts"]} >= {"configs", "models"}
    return Box(stack, repo, place, report["snapshot_id"], env)


def _compose_only(box: Box) -> str:
    """A directory holding only a compose file: `sbx init` writes its sbx.toml there."""
    target = box.place / "init-stack"
    target.mkdir(exist_ok=True)
    (target / "docker-compose.yml").write_text("services: {}\n", encoding="utf-8")
    return str(target)


#: (id, arguments after the box's --stack/--repo are known, exit status, check of the JSON)
CASES: list[tuple[str, Callable[[Box], list[str]], int, Callable[[Any, Box], bool]]] = [
    ("snapshots", lambda b: ["snapshots", "--repo", str(b.repo), "--stack", str(b.stack)], 0,
     lambda j, b: [row["id"] for row in j] == [b.snapshot_id]),
    ("verify", lambda b: ["verify", "--repo", str(b.repo), "--stack", str(b.stack)], 0,
     lambda j, b: j["snapshots"] == [b.snapshot_id] and j["damaged"] == []),
    ("prune", lambda b: ["prune", "--dry-run", "--keep-last", "1", "--repo", str(b.repo),
                         "--stack", str(b.stack)], 0,
     lambda j, b: j["removed"] == [] and b.snapshot_id in j["kept"]),
    ("restore", lambda b: ["restore", "latest", "--to", str(b.place / "restored"), "--part",
                           "configs", "--repo", str(b.repo), "--stack", str(b.stack)], 0,
     lambda j, b: j["snapshot_id"] == b.snapshot_id and Path(j["target"]).is_dir()),
    ("restore-cleanup", lambda b: ["restore", "cleanup", "--dry-run", "--stack", str(b.stack)], 0,
     lambda j, b: j["removed"] == []),
    ("diff", lambda b: ["diff", "latest", b.snapshot_id[:12], "--repo", str(b.repo),
                        "--stack", str(b.stack)], 0,
     lambda j, b: j["a"] == j["b"] == b.snapshot_id and j["changes"] == []),
    ("changelog", lambda b: ["changelog", "--stack", str(b.stack)], 0,
     lambda j, b: isinstance(j, list)),
    ("changelog-verify", lambda b: ["changelog", "verify", "--stack", str(b.stack)], 0,
     lambda j, b: j["intact"] is True),
    ("status", lambda b: ["status", "--stack", str(b.stack)], 1,  # no container runs
     lambda j, b: {s["name"] for s in j["services"]} >= {"worker", "qdrant"}),
    ("logs-rotate", lambda b: ["logs", "rotate", "--dry-run", "--stack", str(b.stack)], 0,
     lambda j, b: "directories" in j),
    ("setup", lambda b: ["setup"], 0,
     lambda j, b: {"block type", "work pool", "concurrency limit"} <= {i["kind"] for i in j}),
    ("server-status", lambda b: ["server", "status"], 1,  # none runs in this SBX_HOME
     lambda j, b: j == {"running": False}),
    ("init", lambda b: ["init", "--stack", _compose_only(b), "--repo", str(b.repo)], 0,
     lambda j, b: j["outcome"] == "written" and j["repository"] == str(b.repo)),
]  # fmt: skip


@pytest.mark.parametrize(("args", "status", "holds"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_json_is_the_whole_of_stdout(
    box: Box,
    args: Callable[[Box], list[str]],
    status: int,
    holds: Callable[[Any, Box], bool],
) -> None:
    done = box.sbx(*args(box), "--json")
    assert done.exception is None, done.exception
    assert done.exit_code == status, done.stderr[-3000:]
    parsed = json.loads(done.stdout)  # raises on anything printed beside the JSON
    assert holds(parsed, box), parsed


def test_damage_is_json_on_stdout_and_one_error_line(box: Box) -> None:
    """Exit 1 as without --json; the report names the damage, stderr says it once."""
    damaged = box.place / "damaged-repo"
    import shutil

    shutil.copytree(box.repo, damaged)
    objects = sorted(p for p in (damaged / "objects").rglob("*") if p.is_file())
    blob = bytearray(objects[0].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    objects[0].write_bytes(bytes(blob))
    done = box.sbx("verify", "--repo", str(damaged), "--stack", str(box.stack), "--json")
    assert done.exception is None and done.exit_code == 1, done.stderr[-3000:]
    assert json.loads(done.stdout)["damaged"], done.stdout
    assert done.stderr.count("error:") == 1, done.stderr


def test_drill_json_is_its_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drill needs a running stack (tests/drill): its printing is checked on a report."""
    import sbx.cli.drill as drill_cli
    from tasks.drill.report import DrillReport
    from tasks.health.model import CheckResult

    report = DrillReport(
        drill_id="d1", snapshot_id="20260102T030405Z-abcdef", repository="/srv/repo",
        stack_dir=Path("/stack"), scratch_project="drill-d1", passed=True,
        started_at=datetime(2026, 1, 2, tzinfo=UTC), rto_s=12.5, phases={"restore": 3.0},
        checks=[CheckResult(id="answers:worker", family="answers", target="worker",
                            state="ok", observed="HTTP 200 on chat completion (12 ms)")],
    )  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(drill_cli, "out", Console(file=stdout, width=80))
    monkeypatch.setattr(drill_cli, "err", Console(file=stderr, width=80))
    drill_cli._print(report, True)
    assert DrillReport.model_validate_json(stdout.getvalue()) == report
    assert stderr.getvalue() == ""
    drill_cli._print(report, False)  # without --json: one line per check, on stderr
    assert "answers:worker" in stderr.getvalue()
