"""Parts from the compose model (design.md, "Parts of a backup"): what a box's compose file
names is in the backup, wherever it lives, and comes back — to a directory and in place.

A small stack of one stand-in image, not the example stack: a compose file named
``compose.yml`` whose image comes from ``.env``, an ``include:``d file with an ``env_file``
outside ``env/``, an ``env_file`` and a bind mount outside the stack directory, a named volume
(as the stock Open WebUI compose file has), and Docker's socket (listed, never captured).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from bed.engine import LABEL
from bed.stack import compose_command
from helpers import describe_tree

from flows.backup import backup_stack
from flows.drill import drill_restore
from flows.restore import restore_snapshot
from sbx.errors import BackupIncomplete
from tasks.clients.docker_volumes import HELPER_LABEL
from tasks.reports import backup_markdown

COMPOSE = """\
include:
  - inc/extra.yml
services:
  app:
    image: ${{APP_IMAGE}}
    # each start leaves a line in a bind mount and in a volume: who mounted what is visible
    command: ["sh", "-c", "echo up >> /marks/started; echo up >> /runs/started; exec sleep 1d"]
    init: true
    env_file: [../outside/app.env]
    volumes:
      - {outside}/data:/data
      - {outside}/marks:/marks
      - chats:/app/backend/data
      - runs:/runs
      - /var/run/docker.sock:/var/run/docker.sock:ro
volumes:
  chats:
    labels: {{{label}: "{run_id}"}}
  runs:
    labels: {{{label}: "{run_id}"}}
"""
EXTRA = """\
services:
  sidecar:
    image: ${APP_IMAGE}
    command: ["sleep", "infinity"]
    init: true
    env_file: [extra.env]
"""
# the default services are not in this stack; app is, and must run for it to be healthy
NO_DEFAULT_SERVICES = (
    "".join(
        f"[services.{name}]\nenabled = false\n"
        for name in ("worker", "watchdog", "qdrant", "open-webui", "proxy", "internet-research")
    )
    + '[services.app]\ncompose_service = "app"\nkind = "agent"\n'
)  # required: must run

STACK_FILES = [".env", "compose.yml", "inc", "sbx.toml"]


class PartsStack:
    def __init__(self, root: Path, run_id: str, image: str) -> None:
        self.path = root / "stack"
        self.outside = root / "outside"
        self.project = f"sbxt-{run_id}-parts"
        self.volume = f"{self.project}_chats"
        (self.path / "inc").mkdir(parents=True)
        (self.outside / "data" / "sub").mkdir(parents=True)
        (self.outside / "marks").mkdir()
        (self.path / "compose.yml").write_text(
            COMPOSE.format(outside=self.outside, label=LABEL, run_id=run_id)
        )
        (self.path / "inc" / "extra.yml").write_text(EXTRA)
        (self.path / "inc" / "extra.env").write_text("SIDECAR_TOKEN=one\n")
        (self.path / ".env").write_text(f"COMPOSE_PROJECT_NAME={self.project}\nAPP_IMAGE={image}\n")
        (self.path / "sbx.toml").write_text(NO_DEFAULT_SERVICES)
        (self.outside / "app.env").write_text("APP_MODE=one\n")
        (self.outside / "data" / "sub" / "state.json").write_text('{"v": 1}\n')

    def compose(self, *args: str) -> None:
        subprocess.run([*compose_command(), *args], cwd=self.path, check=True, capture_output=True)

    def in_volume(self, script: str) -> str:
        done = subprocess.run(
            ["docker", "exec", f"{self.project}-app-1", "sh", "-c", script],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout


@pytest.fixture
def parts_stack(
    tmp_path: Path, run_id: str, standin_images: dict[str, str]
) -> Iterator[PartsStack]:
    stack = PartsStack(tmp_path, run_id, standin_images["base"])
    try:
        yield stack
    finally:
        subprocess.run(
            [*compose_command(), "down", "-v", "-t", "1"], cwd=stack.path, capture_output=True
        )


def test_what_the_compose_file_names_is_backed_up_and_restored(
    parts_stack: PartsStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = parts_stack
    stack.compose("up", "-d")
    stack.in_volume(
        "echo chat-1 > /app/backend/data/webui.db && mkdir /app/backend/data/uploads && "
        "echo doc > /app/backend/data/uploads/a.txt && chown 1234:5678 /app/backend/data/webui.db"
    )
    outside_before = describe_tree(stack.outside, ["app.env", "data"])
    stack_before = describe_tree(stack.path, STACK_FILES)

    repo = tmp_path / "repo"
    report = backup_stack(stack=str(stack.path), repo=str(repo))
    parts = {p.name: p for p in report.parts}
    stored = {s["from"]: (p.name, s["stored_as"], s["status"]) for p in report.parts
              for s in p.sources}  # fmt: skip
    outside = str(stack.outside).lstrip("/")
    assert stored[str(stack.path / ".env")] == ("configs", ".env", "captured")
    assert stored[str(stack.path / "compose.yml")] == ("configs", "compose.yml", "captured")
    assert stored[str(stack.path / "inc" / "extra.yml")][:2] == ("configs", "inc/extra.yml")
    assert stored[str(stack.path / "inc" / "extra.env")][:2] == ("configs", "inc/extra.env")
    assert stored[str(stack.outside / "app.env")] == (
        "outside", f"outside/{outside}/app.env", "captured",
    )  # fmt: skip
    assert stored[str(stack.outside / "data")][:2] == ("outside", f"outside/{outside}/data")
    assert stored[stack.volume] == ("volumes", f"volumes/{stack.volume}", "captured")
    assert stored["/var/run/docker.sock"][2].startswith("not captured")
    assert {parts[n].status for n in ("configs", "outside", "volumes")} == {"captured"}
    markdown = backup_markdown(report)
    assert "## What the compose file names" in markdown
    assert f"| volume | `{stack.volume}` | service app: /app/backend/data | volumes |" in markdown

    # to a directory: the stack's files where they were, the rest in the documented layout
    target = tmp_path / "restored"
    restore_snapshot(snapshot="latest", to=str(target), repo=str(repo), stack=str(stack.path))
    assert describe_tree(target, STACK_FILES[:-1]) == {
        k: v for k, v in stack_before.items() if not k.startswith("sbx.toml")
    }
    assert describe_tree(target / "outside" / outside, ["app.env", "data"]) == outside_before
    chats = target / "volumes" / stack.volume
    assert (chats / "webui.db").read_text() == "chat-1\n"
    assert (chats / "webui.db").stat().st_uid == 1234
    assert (chats / "uploads" / "a.txt").read_text() == "doc\n"

    # in place: every source changed on the live box comes back
    (stack.path / ".env").write_text((stack.path / ".env").read_text() + "LATER=1\n")
    (stack.path / "inc" / "extra.env").write_text("SIDECAR_TOKEN=two\n")
    (stack.outside / "app.env").write_text("APP_MODE=two\n")
    (stack.outside / "data" / "sub" / "state.json").write_text('{"v": 2}\n')
    stack.in_volume("echo chat-2 > /app/backend/data/webui.db && touch /app/backend/data/new")
    outcome = restore_snapshot(
        snapshot="latest", in_place=True, repo=str(repo), stack=str(stack.path)
    )
    # (the directory inc/ itself is not a source: renaming its files in touched its mtime)
    after = describe_tree(stack.path, STACK_FILES)
    assert {k: v for k, v in after.items() if k != "inc"} == {
        k: v for k, v in stack_before.items() if k != "inc"
    }
    assert describe_tree(stack.outside, ["app.env", "data"]) == outside_before
    listing = stack.in_volume("cat /app/backend/data/webui.db; ls -A /app/backend/data")
    assert listing.split() == ["chat-1", "uploads", "webui.db"]
    assert stack.in_volume("stat -c %u:%g /app/backend/data/webui.db").strip() == "1234:5678"
    # what was replaced is kept: the volume's old content as a tar, the outside files aside
    kept = outcome.kept
    assert f".sbx/restores/{outcome.swapped.stamp}/volumes/{stack.volume}.tar" in kept
    assert any(k.endswith(f"outside/{outside}/app.env") for k in kept)
    client = docker.from_env()
    try:
        assert not client.containers.list(all=True, filters={"label": HELPER_LABEL})
    finally:
        client.close()


def test_a_missing_source_the_compose_file_names_fails_its_part_unless_optional(
    parts_stack: PartsStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = parts_stack
    (stack.outside / "data" / "sub" / "state.json").unlink()
    (stack.outside / "data" / "sub").rmdir()
    (stack.outside / "data").rmdir()  # the data disk is not mounted: the chats are not there
    with pytest.raises(BackupIncomplete) as failed:
        backup_stack(stack=str(stack.path), repo=str(tmp_path / "repo"))
    parts = {p.name: p for p in failed.value.report.parts}
    assert parts["outside"].status == "failed"
    assert str(stack.outside / "data") in (parts["outside"].reason or "")
    assert "optional = true" in (parts["outside"].reason or "")
    assert parts["volumes"].status == "failed"  # never started: compose made no volume yet

    toml = stack.path / "sbx.toml"
    toml.write_text(
        toml.read_text() + "[parts.outside]\noptional = true\n[parts.volumes]\noptional = true\n"
    )
    report = backup_stack(stack=str(stack.path), repo=str(tmp_path / "repo"))
    parts = {p.name: p for p in report.parts}
    assert parts["outside"].status == "captured"  # app.env is there
    missing = [s for s in parts["outside"].sources if s["status"] == "missing"]
    assert [s["from"] for s in missing] == [str(stack.outside / "data")]


def test_the_drill_mounts_restored_copies_never_the_live_paths_or_volumes(
    parts_stack: PartsStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = parts_stack
    stack.compose("up", "-d")
    stack.in_volume("echo chat-1 > /app/backend/data/webui.db")
    repo = tmp_path / "repo"
    backup_stack(stack=str(stack.path), repo=str(repo))
    live_marks = (stack.outside / "marks" / "started").read_text()
    live_runs = stack.in_volume("cat /runs/started")

    report = drill_restore(stack=str(stack.path), repo=str(repo))
    assert report.passed, report.failed
    # the scratch app started (and wrote its line) on the restored copies, not the live ones
    assert (stack.outside / "marks" / "started").read_text() == live_marks
    assert stack.in_volume("cat /runs/started") == live_runs


def test_a_source_on_another_file_system_is_carried_across_and_swapped_in(
    parts_stack: PartsStack, prefect_server: str, tmp_path: Path
) -> None:
    """An outside bind mount on its own disk (a tmpfs here) comes back in place: the staged
    copy is carried beside it and renamed in; with no room for that copy, nothing changes."""
    from faults.env_helpers import tmpfs

    from blocks.config import load_config
    from sbx.errors import RestoreRefused
    from tasks.restore.kept import OTHER_FS, cleanup_restores

    stack = parts_stack
    held = tmp_path / "held"
    subprocess.run(["cp", "-a", str(stack.outside), str(held)], check=True)
    with tmpfs(stack.outside, 2) as disk:
        subprocess.run(["cp", "-a", f"{held}/.", str(disk)], check=True)
        assert (disk / "app.env").stat().st_dev != stack.path.stat().st_dev
        (disk / "data" / "link").symlink_to("sub/state.json")
        os.link(disk / "data" / "sub" / "state.json", disk / "data" / "hard")
        (disk / "data" / "big.bin").write_bytes(os.urandom(1200 * 1024))
        stack.compose("up", "-d")
        repo = tmp_path / "repo"
        backup_stack(stack=str(stack.path), repo=str(repo))

        # no room on that disk for a second copy of data/: refused, the live files as they were
        (disk / "app.env").write_text("APP_MODE=two\n")
        live = describe_tree(disk, ["app.env", "data"])
        with pytest.raises(RestoreRefused, match="free space there"):
            restore_snapshot(in_place=True, repo=str(repo), stack=str(stack.path))
        assert describe_tree(disk, ["app.env", "data"]) == live
        assert not list(disk.glob(f"{OTHER_FS}/incoming-*"))

        (disk / "data" / "big.bin").unlink()
        (disk / "app.env").write_text("APP_MODE=one\n")
        backup_stack(stack=str(stack.path), repo=str(repo))
        before = describe_tree(disk, ["app.env", "data"])
        (disk / "app.env").write_text("APP_MODE=three\n")
        (disk / "data" / "sub" / "state.json").write_text('{"v": 3}\n')
        outcome = restore_snapshot(
            snapshot="latest", in_place=True, repo=str(repo), stack=str(stack.path)
        )
        assert describe_tree(disk, ["app.env", "data"]) == before
        assert (disk / "data" / "hard").stat().st_ino == (disk / "data" / "link").stat().st_ino
        kept = disk / OTHER_FS / outcome.swapped.stamp
        assert str(kept / "app.env") in outcome.kept
        assert (kept / "app.env").read_text() == "APP_MODE=three\n"
        assert not list(disk.glob(f"{OTHER_FS}/incoming-*"))  # the carried copy was renamed in
        # cleanup finds what was kept beside the source, outside the stack
        config = load_config(stack.path)
        report = cleanup_restores(config, timedelta(0), now=datetime.now(UTC) + timedelta(1))
        assert str(kept) in [item.path for item in report.removed]
        assert not (disk / OTHER_FS).exists()
        stack.compose("down", "-t", "1")
