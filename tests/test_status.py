"""`sbx status` against the example stack running on the stand-in images (real Docker, compose)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from bed import RunningStack

SBX = [sys.executable, "-m", "sbx"]
CORE = ["worker", "watchdog", "qdrant", "open-webui"]
OPTIONAL = ["proxy", "internet-research"]


def status(stack: RunningStack, *args: str, columns: int = 250) -> subprocess.CompletedProcess[str]:
    # only the stack directory is given: project name and files come from the stack's .env,
    # the URLs from the containers' published ports — zero sbx configuration
    return subprocess.run(
        [*SBX, "status", "--stack", str(stack.path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**stack.env(), "COLUMNS": str(columns)},
    )


def test_status_shows_running_answering_services_then_a_stopped_one(
    running_stack: RunningStack,
) -> None:
    done = status(running_stack, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["project"] == running_stack.project
    services = {svc["name"]: svc for svc in report["services"]}
    assert set(CORE) <= set(services)
    # optional services of the example: shown and probed, the proxy over TLS (its self-signed
    # certificate is not what a probe judges)
    for name in OPTIONAL:
        svc = services[name]
        assert (svc["required"], svc["state"], svc["problem"]) == (False, "running", None), svc
        assert svc["probe"]["ok"] and svc["probe"]["status_code"] == 200, svc
        assert svc["url"] == running_stack.url(name)
    assert services["proxy"]["url"].startswith("https://127.0.0.1:")
    assert set(services) == {*CORE, *OPTIONAL}
    for name in CORE:
        svc = services[name]
        assert svc["state"] == "running", svc
        assert svc["problem"] is None, svc
        assert svc["probe"]["ok"] and svc["probe"]["status_code"] == 200, svc
        assert svc["image"].startswith("sbx-standin-") and svc["digest"].startswith("sha256:")
    assert services["qdrant"]["url"] == running_stack.url("qdrant")
    assert services["qdrant"]["probe"]["url"].endswith("/readyz")
    assert services["open-webui"]["url"] == running_stack.url("open-webui")
    assert any(
        f":{running_stack.ports['worker']}->8000/tcp" in p for p in services["worker"]["ports"]
    )

    table = status(running_stack)
    assert table.returncode == 0, table.stderr
    assert "all 4 required services running and answering" in table.stdout
    for name in CORE:
        assert name in table.stdout
    # an ordinary terminal: one line per service, nothing past column 80
    narrow = status(running_stack, columns=80)
    lines = narrow.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow.stdout
    for name in [*CORE, *OPTIONAL]:
        (row,) = [line for line in lines if line.split(" ", 1)[0].rstrip("?") == name]
        assert "@" in row and ("200," in row), row  # image@digest and the answer, on that line

    # a copy of the stack elsewhere carries the same project name: not the same stack
    twin = running_stack.path.parent / "elsewhere" / running_stack.path.name
    shutil.copytree(running_stack.path, twin, symlinks=True, ignore=shutil.ignore_patterns("data"))
    twin_done = subprocess.run(
        [*SBX, "status", "--stack", str(twin), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**running_stack.env(), "COLUMNS": "250"},
    )
    twin_report = json.loads(twin_done.stdout)
    assert twin_done.returncode == 1
    assert twin_report["foreign"] == [str(running_stack.path)]
    assert {s["state"] for s in twin_report["services"] if s["required"]} == {"missing"}

    running_stack.compose("stop", "-t", "2", "qdrant")
    down = status(running_stack)
    assert down.returncode == 1, down.stdout
    assert "✗ qdrant: container is exited" in down.stderr
    down_json = json.loads(status(running_stack, "--json").stdout)
    states = {svc["name"]: svc["state"] for svc in down_json["services"]}
    assert states["qdrant"] == "exited"
    assert all(states[name] == "running" for name in CORE if name != "qdrant")


def test_status_names_an_endpoint_that_does_not_answer(running_stack: RunningStack) -> None:
    # the container runs but sbx is told to probe a port nothing listens on
    (running_stack.path / "sbx.toml").write_text(
        '[services.worker]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8"
    )
    done = status(running_stack)
    assert done.returncode == 1
    assert "✗ worker: http://127.0.0.1:9/health does not answer: connection refused" in done.stderr
