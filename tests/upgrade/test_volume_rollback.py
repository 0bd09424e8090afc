"""An upgrade's data rollback when the data is a named volume (issue #21 §1), as the stock Open
WebUI compose file has it: ``open-webui:/app/backend/data``.

One stack for the module: ``open-webui`` (the stand-in releases of upgrade_bed.WEBUI_RELEASES,
its chat writer off) on the named volume ``webui-data`` instead of the example's bind mount, and
``notes``, another service writing its own named volume ``notes-data``, which no upgrade of
Open WebUI may snapshot, stop or roll back. The tests run in order; each starts from w1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from bed.engine import LABEL
from bed.stack import OVERRIDE, RunningStack, prepare_stack, stop_stack
from docker import DockerClient
from upgrade_bed import Releases, Sbx, bring_up, cli_runner, journal, running_digest

from sbx.repository import Repository

OLD_REVISION, NEW_REVISION = "7826ab40b532", "3781e22d8b01"
SERVICE = "open-webui"
DATA = "/app/backend/data"
# (alembic revision, chat's columns, chat titles) of the volume's webui.db, read by a one-shot
# container of the w1 image (the stand-in has Python) with the volume mounted
READ_DB = """
import json, sqlite3
conn = sqlite3.connect("/d/webui.db", timeout=10)
rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
cols = [r[1] for r in conn.execute("PRAGMA table_info(chat)")]
titles = [r[0] for r in conn.execute("SELECT title FROM chat ORDER BY id")]
print(json.dumps([rev, cols, titles]))
"""
ADD_ROWS = """
import sqlite3, sys
conn = sqlite3.connect("/d/webui.db", timeout=10)
with conn:
    for title in sys.argv[1:]:
        conn.execute("INSERT INTO chat (user_id, title, chat, created_at) "
                     "VALUES ('u', ?, '{}', 0)", (title,))
"""


@pytest.fixture(scope="module")
def volume_stack(
    webui_releases: Releases,
    standin_images: dict[str, str],
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("volume-rollback")
    stack = prepare_stack(root / "stack", run_id)
    override = stack.path / OVERRIDE
    text = override.read_text().replace(
        f"  {SERVICE}:\n",
        f"  {SERVICE}:\n    image: {webui_releases.stable}\n"
        '    environment:\n      STANDIN_WRITE_INTERVAL: "0"\n'
        f"    volumes:\n      - webui-data:{DATA}\n",
    )
    text = text.replace(
        "services:\n",
        "services:\n  notes:\n"
        f"    image: {standin_images['base']}\n"
        '    command: ["sh", "-c", "echo started >> /notes/log; exec sleep 1d"]\n'
        "    init: true\n    volumes:\n      - notes-data:/notes\n"
        f'    labels:\n      {LABEL}: "{run_id}"\n',
        1,
    )
    text += "".join(
        f'volumes:\n  {name}:\n    labels:\n      {LABEL}: "{run_id}"\n'
        if i == 0
        else f'  {name}:\n    labels:\n      {LABEL}: "{run_id}"\n'
        for i, name in enumerate(("webui-data", "notes-data"))
    )
    override.write_text(text)
    try:
        bring_up(stack, webui_releases, "w1", [SERVICE, "notes"], root / "repo")
        # sbx.toml keeps the default part for Open WebUI's bind mount (data/open-webui), which
        # this box, like one on the stock compose file, does not have: skipped, not failed
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture
def sbx(prefect_server: str, volume_stack: RunningStack) -> Sbx:
    return cli_runner(prefect_server, volume_stack)


def _in_volume(
    releases: Releases, stack: RunningStack, volume: str, script: str, *args: str
) -> str:
    out = releases.client.containers.run(
        releases.digests["w1"],
        entrypoint=["python3", "-c", script, *args],
        volumes={f"{stack.project}_{volume}": {"bind": "/d", "mode": "rw"}},
        labels={LABEL: "volume-rollback"},
        network_disabled=True,
        remove=True,
    )
    return out.decode() if isinstance(out, bytes) else str(out)


def db_state(releases: Releases, stack: RunningStack) -> list[object]:
    return list(json.loads(_in_volume(releases, stack, "webui-data", READ_DB)))


def notes_state(client: DockerClient, stack: RunningStack) -> tuple[str, str]:
    """(when ``notes`` started, its volume's log): a stop or a rollback of it changes either."""
    (notes,) = client.containers.list(
        filters={"label": [f"com.docker.compose.project={stack.project}",
                           "com.docker.compose.service=notes"]},
    )  # fmt: skip
    log = notes.exec_run(["cat", "/notes/log"]).output.decode()
    return notes.attrs["State"]["StartedAt"], log


def test_failed_upgrade_that_migrated_the_volume_returns_old_image_and_old_rows(
    webui_releases: Releases, volume_stack: RunningStack, sbx: Sbx
) -> None:
    client = webui_releases.client
    stack = volume_stack
    _in_volume(webui_releases, stack, "webui-data", ADD_ROWS, "kept 1", "kept 2")
    before = db_state(webui_releases, stack)
    assert before[0] == OLD_REVISION and before[2] == ["kept 1", "kept 2"]
    notes_before = notes_state(client, stack)

    webui_releases.publish("w2-migrate-crash")
    done = sbx("upgrade", SERVICE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rolled back: " in done.stderr, done.stderr
    volume = f"{stack.project}_webui-data"
    assert "restored data (volumes) from pre-upgrade snapshot" in done.stderr, done.stderr
    assert f"volumes:{volume} changed since" in done.stderr, done.stderr
    assert running_digest(client, stack, SERVICE) == webui_releases.digests["w1"]
    assert db_state(webui_releases, stack) == before  # the old revision, schema and rows
    # the volume the new image migrated is kept aside, not lost
    assert list((stack.path / ".sbx" / "restores").glob(f"*/volumes/{volume}.tar"))

    last = journal(stack.path)[-1]
    assert last["state"] == "rolled-back", last
    units = last["data_units"]
    # the skipped part is no unit: nothing of it could be put back
    assert list(units) == [f"volumes:{volume}"], last  # type: ignore[call-overload]
    # the snapshot holds Open WebUI's volume and nothing of notes', which was neither stopped
    # for it nor rolled back
    repo = Repository.open(str(stack.path.parent / "repo"))
    manifest = repo.load_snapshot(str(last["data_snapshot"]))
    assert [(p.name, p.status) for p in manifest.parts] == [
        (SERVICE, "skipped"),
        ("volumes", "captured"),
    ]
    assert [s["from"] for s in manifest.parts[1].detail["sources"]] == [volume]
    assert notes_state(client, stack) == notes_before


def test_rollback_puts_the_volume_back_and_leaves_the_other_service_alone(
    webui_releases: Releases, volume_stack: RunningStack, sbx: Sbx
) -> None:
    client = webui_releases.client
    stack = volume_stack
    before = db_state(webui_releases, stack)
    webui_releases.publish("w2-migrate")
    up = sbx("upgrade", SERVICE)
    assert up.returncode == 0, up.stdout + up.stderr
    migrated = db_state(webui_releases, stack)
    assert migrated[0] == NEW_REVISION and "folder_id" in migrated[1], migrated  # type: ignore[operator]
    _in_volume(webui_releases, stack, "webui-data", ADD_ROWS, "written by the new release")
    # the new release's data, as a night takes it (notes is stopped for its volume's copy)
    backup = sbx("backup", "--part", "volumes")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    newer = backup.stdout.strip().splitlines()[-1]
    notes_before = notes_state(client, stack)

    back = sbx("rollback", SERVICE)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "data: restored data (volumes)" in back.stderr, back.stderr
    assert running_digest(client, stack, SERVICE) == webui_releases.digests["w1"]
    assert db_state(webui_releases, stack) == before
    assert notes_state(client, stack) == notes_before

    # the volume the new release wrote does not go into the old image unasked
    refused = sbx("restore", newer, "--in-place", "--part", "volumes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert "part 'volumes' was written by open-webui 0.5.4-standin" in message, message
    assert "now runs 0.3.35-standin" in message and "--force" in message, message
    assert db_state(webui_releases, stack) == before
