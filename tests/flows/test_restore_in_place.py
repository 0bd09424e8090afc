"""In-place restore on the running stack: verified first, old data kept aside, healthy after."""

from __future__ import annotations

from pathlib import Path

import pytest
from bed import RunningStack
from bed.qdrant_seed import qdrant_client, seed_qdrant, snapshot_files
from qdrant_client import models

from flows.backup import backup_stack
from flows.restore import restore_snapshot
from sbx.errors import RestoreUnhealthy
from tasks.changelog import read_changes


def test_in_place_restore_swaps_and_keeps_the_old_data(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    stack = running_stack.path
    seed_qdrant(running_stack.url("qdrant"), {"docs": 120}, running_stack.api_key("qdrant"))
    # the upgrade journal's closed entries and pins are in the configs part
    upgrade = stack / ".sbx" / "upgrade"
    upgrade.mkdir(parents=True, exist_ok=True)
    (upgrade / "journal.jsonl").write_text('{"id": "first"}\n')
    (upgrade / "pins.yml").write_text("# pinned at the backup\nservices: {}\n")
    repo = str(tmp_path / "repo")
    snapshot = backup_stack(stack=str(stack), repo=repo).snapshot_id
    (upgrade / "journal.jsonl").write_text('{"id": "first"}\n{"id": "second"}\n')
    (upgrade / "pins.yml").write_text("# pinned later\nservices: {}\n")

    # the day goes wrong: a note deleted, a collection dropped and another one created
    lost = stack / "notes" / next(p.name for p in (stack / "notes").iterdir() if p.is_file())
    original = lost.read_bytes()
    lost.unlink()
    client = qdrant_client(running_stack.url("qdrant"), running_stack.api_key("qdrant"))
    client.delete_collection("docs")
    client.create_collection(
        "scratch", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
    )

    beside = sorted(p.name for p in stack.parent.iterdir())
    in_stack = sorted({p.name for p in stack.iterdir()} | {".sbx"})
    outcome = restore_snapshot(snapshot=snapshot, in_place=True, repo=repo, stack=str(stack))
    assert outcome.in_place and outcome.healthy_after_s is not None
    assert lost.read_bytes() == original
    # issue 20: nothing new beside the stack nor in it; everything under .sbx/restores/<time>/
    assert sorted(p.name for p in stack.parent.iterdir()) == beside
    assert sorted(p.name for p in stack.iterdir()) == in_stack
    assert outcome.swapped is not None
    home = f".sbx/restores/{outcome.swapped.stamp}"
    moved = dict(outcome.swapped.moved)
    assert moved["notes"] == f"{home}/notes" and (stack / moved["notes"]).is_dir()
    assert f"{home}/logs.restored" in outcome.kept and (stack / home / "logs.restored").is_dir()
    assert f"{home}/qdrant-collections" in outcome.kept
    assert all(path.startswith(f"{home}/") for path in outcome.kept), outcome.kept
    history = ".sbx/upgrade/journal.jsonl"  # history, not state: the live one stays
    asides = {aside for live, aside in moved.items() if aside and live != history}
    assert set(outcome.kept) >= asides
    assert (upgrade / "journal.jsonl").read_text().count('"id"') == 2
    assert (upgrade / f"journal.jsonl.from-{snapshot}").read_text() == '{"id": "first"}\n'
    assert (upgrade / "pins.yml").read_text().startswith("# pinned at the backup")
    # every kept path is in the change log too
    assert read_changes(stack)[-1].before == {"kept_as": outcome.kept}
    assert not (stack / moved["notes"] / lost.name).exists()  # the old state, kept aside
    assert moved["data/open-webui"] is not None
    assert (stack / "data" / "open-webui" / "webui.db").is_file()
    assert client.count("docs", exact=True).count == 120
    # what Qdrant held just before (only "scratch") was snapshotted aside, to swap back if needed
    assert outcome.swapped and set(outcome.swapped.qdrant_aside) == {"scratch"}
    assert Path(outcome.swapped.qdrant_aside["scratch"]).is_file()
    assert not (stack / ".sbx" / f"restore-{snapshot}").exists()  # staging cleaned up
    # neither the snapshot taken aside nor the upload Qdrant keeps is left on the live box
    assert snapshot_files(stack) == []
    client.close()

    ps = running_stack.compose("ps", "--format", "{{.Service}} {{.State}}").stdout.split("\n")
    states = dict(line.split() for line in ps if line.strip())
    assert set(states.values()) == {"running"}, states


def test_an_unhealthy_result_is_swapped_back(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    """Files, configuration and collections all go back — also when the configuration changed
    since the snapshot, Qdrant's key with it: the containers then run the previous
    configuration again, not the restored one."""
    stack = running_stack.path
    seed_qdrant(running_stack.url("qdrant"), {"docs": 5}, running_stack.api_key("qdrant"))
    repo = str(tmp_path / "repo")
    snapshot = backup_stack(stack=str(stack), repo=repo).snapshot_id
    marker = stack / "notes" / "written-after-the-backup.md"
    marker.write_text("today's note\n")
    # since the backup, Qdrant's key was rotated and the containers recreated with it
    env = stack / "env" / "qdrant.env"
    env.write_text(env.read_text().replace("example-qdrant-key-change-me", "rotated-key-2"))
    running_stack.compose("up", "-d", "--wait", "qdrant")
    seed_qdrant(running_stack.url("qdrant"), {"later": 3}, "rotated-key-2")
    # a required service that never answers: the restored stack cannot become healthy
    (stack / "sbx.toml").write_text(
        'restore_health_timeout_s = 3\n[services.worker]\nurl = "http://127.0.0.1:9"\n'
    )
    with pytest.raises(RestoreUnhealthy, match="swapped back"):
        restore_snapshot(snapshot=snapshot, in_place=True, repo=repo, stack=str(stack))
    assert marker.read_text() == "today's note\n"  # the live data is back in place
    # the restored data, kept for a look where the old data would have been kept
    assert list(stack.glob(".sbx/restores/*/notes.failed-restore"))
    assert not list(stack.glob("notes.*")) and not list(stack.parent.glob("*.pre-restore-*"))
    ps = running_stack.compose("ps", "--format", "{{.Service}} {{.State}}").stdout.split("\n")
    assert {line.split()[1] for line in ps if line.strip()} == {"running"}
    # Qdrant runs the rotated key again (not the snapshot's), with the collections of before
    assert "rotated-key-2" in env.read_text()
    client = qdrant_client(running_stack.url("qdrant"), "rotated-key-2")
    assert sorted(c.name for c in client.get_collections().collections) == ["docs", "later"]
    assert client.count("later").count == 3
    client.close()
