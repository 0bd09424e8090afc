"""Upgrades that roll back the data too (issue #21 §1), on the Open WebUI stand-in.

One stack for the module with only ``open-webui`` up (its chat writer off, so the rows are the
ones a test writes), its image the registry's moving ``stable`` tag. Releases (images FROM the
stand-in, pushed to the local registry): w1 as it is; w2-crash exits 3 s after start;
w2-migrate-crash first "migrates" webui.db (alembic revision 7826ab40b532 -> 3781e22d8b01, a new
table and column, as an Open WebUI release does on start) and then crashes; w2-migrate migrates
and runs. The tests run in order; each starts from the w1 the previous one left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from bed.stack import OVERRIDE, RunningStack, prepare_stack, stop_stack
from upgrade_bed import Releases, Sbx, bring_up, cli_runner, journal, running_digest

from sbx.repository import Repository
from tasks.backup.box_state import alembic_revision

OLD_REVISION, NEW_REVISION = "7826ab40b532", "3781e22d8b01"
SERVICE = "open-webui"


@pytest.fixture(scope="module")
def webui_stack(
    webui_releases: Releases, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The example stack with only open-webui up, on the registry's ``stable`` tag (w1); the
    other services are marked not required (sbx.toml) so health and restores judge it alone."""
    root = tmp_path_factory.mktemp("data-rollback")
    stack = prepare_stack(root / "stack", run_id)
    override = stack.path / OVERRIDE
    override.write_text(
        override.read_text().replace(
            f"  {SERVICE}:\n",
            f"  {SERVICE}:\n    image: {webui_releases.stable}\n"
            '    environment:\n      STANDIN_WRITE_INTERVAL: "0"\n',
        )
    )
    try:
        bring_up(stack, webui_releases, "w1", [SERVICE], root / "repo")
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture
def sbx(prefect_server: str, webui_stack: RunningStack) -> Sbx:
    return cli_runner(prefect_server, webui_stack)


def _db(stack: RunningStack) -> Path:
    return stack.path / "data" / "open-webui" / "webui.db"


def db_state(stack: RunningStack) -> tuple[str | None, list[str], list[str], list[str]]:
    """(alembic revision, chat's columns, tables, chat titles) as the database holds them."""
    conn = sqlite3.connect(f"{_db(stack).as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(chat)")]
        tables = sorted(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )
        titles = [r[0] for r in conn.execute("SELECT title FROM chat ORDER BY id")]
    finally:
        conn.close()
    return alembic_revision(_db(stack)), columns, tables, titles


def add_rows(stack: RunningStack, *titles: str) -> None:
    conn = sqlite3.connect(_db(stack), timeout=10)
    try:
        with conn:
            for title in titles:
                conn.execute(
                    "INSERT INTO chat (user_id, title, chat, created_at) VALUES ('u', ?, '{}', 0)",
                    (title,),
                )
    finally:
        conn.close()


def kept_databases(stack: RunningStack) -> list[Path]:
    return sorted((stack.path / ".sbx" / "restores").glob("*/data/open-webui/webui.db"))


def test_failed_upgrade_that_migrated_returns_old_image_and_old_rows(
    webui_releases: Releases, webui_stack: RunningStack, sbx: Sbx
) -> None:
    client = webui_releases.client
    assert running_digest(client, webui_stack, SERVICE) == webui_releases.digests["w1"]
    add_rows(webui_stack, "kept 1", "kept 2", "kept 3")
    before = db_state(webui_stack)
    assert before[0] == OLD_REVISION and before[3] == ["kept 1", "kept 2", "kept 3"]
    webui_releases.publish("w2-migrate-crash")
    done = sbx("upgrade", SERVICE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rolled back: " in done.stderr, done.stderr
    assert "restored data (open-webui) from pre-upgrade snapshot" in done.stderr, done.stderr
    assert running_digest(client, webui_stack, SERVICE) == webui_releases.digests["w1"]
    assert db_state(webui_stack) == before  # the old revision, schema and rows
    last = journal(webui_stack.path)[-1]
    assert last["state"] == "rolled-back", last
    assert str(last["data"]).startswith("restored data"), last
    # what the new image migrated is kept aside, not lost
    [kept] = kept_databases(webui_stack)
    assert alembic_revision(kept) == NEW_REVISION
    # the snapshot is the normal backup of the part, tagged with the journal entry
    repo = Repository.open(str(webui_stack.path.parent / "repo"))
    [snapshot] = [s for s in repo.snapshot_summaries() if s.id == last["data_snapshot"]]
    assert snapshot.tags == {"trigger": "pre-upgrade", "pre-upgrade": last["id"]}  # type: ignore[union-attr]
    assert [p.name for p in snapshot.parts] == [SERVICE]  # type: ignore[union-attr]


def test_failed_upgrade_that_left_the_data_says_data_unchanged(
    webui_releases: Releases, webui_stack: RunningStack, sbx: Sbx
) -> None:
    before = db_state(webui_stack)
    kept = kept_databases(webui_stack)
    webui_releases.publish("w2-crash")
    done = sbx("upgrade", SERVICE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "data unchanged since pre-upgrade snapshot" in done.stderr, done.stderr
    assert (
        running_digest(webui_releases.client, webui_stack, SERVICE) == webui_releases.digests["w1"]
    )
    assert db_state(webui_stack) == before
    assert kept_databases(webui_stack) == kept  # nothing was restored
    assert str(journal(webui_stack.path)[-1]["data"]).startswith("data unchanged")


def test_rollback_returns_data_and_newer_data_into_the_old_image_is_refused(
    webui_releases: Releases, webui_stack: RunningStack, sbx: Sbx
) -> None:
    client = webui_releases.client
    before = db_state(webui_stack)
    webui_releases.publish("w2-migrate")
    up = sbx("upgrade", SERVICE)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "data: pre-upgrade snapshot" in up.stderr, up.stderr
    assert db_state(webui_stack)[0] == NEW_REVISION
    add_rows(webui_stack, "written by the new release")
    backup = sbx("backup", "--part", SERVICE)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    newer = backup.stdout.strip().splitlines()[-1]

    back = sbx("rollback", SERVICE)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "data: restored data (open-webui)" in back.stderr, back.stderr
    assert running_digest(client, webui_stack, SERVICE) == webui_releases.digests["w1"]
    assert db_state(webui_stack) == before

    refused = sbx("restore", newer, "--in-place", "--part", SERVICE)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert "written by open-webui 0.5.4-standin, data version 3781e22d8b01" in message, message
    assert "now runs 0.3.35-standin" in message and "--force" in message, message
    assert db_state(webui_stack) == before

    forced = sbx("restore", newer, "--in-place", "--part", SERVICE, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    revision, _, _, titles = db_state(webui_stack)
    assert revision == NEW_REVISION and titles[-1] == "written by the new release"
    assert running_digest(client, webui_stack, SERVICE) == webui_releases.digests["w1"]
