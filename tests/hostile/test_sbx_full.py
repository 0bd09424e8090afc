"""A full `.sbx` during every stateful flow (#23 deliverable 8, deliverable 1's rule).

The stack, and so its `.sbx`, is on a 4 MiB tmpfs, filled to the brim by a file in `.sbx`;
each flow runs through the real `sbx` CLI against the session's Prefect test server. A flow
that finds no room exits 1 with one line naming the path, "No space left on device" and where
to free space; nothing is lost (live data, keys and logs as they were, no staging, journal or
half-written record left behind), and once the space is freed the next run works. One
files-only stack serves the whole module (a backup of it is the snapshot restores and drills
use). The upgrade's own case is tests/upgrade/test_rollback_survives.py; the cold copy's stop
marker is tested below the CLI (it needs a running container otherwise).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults.env_helpers import files_stack, fill_to_brim, run_cli, tmpfs

from hostile.conftest import Examples
from sbx.errors import NoSpace
from tasks.changelog import append_change, log_path, verify_changes
from tasks.clients.gpu_fake import h100
from tasks.gpu.check import FAKE_ENV
from tasks.incident.record import list_incidents

pytestmark = pytest.mark.prefect

LLAMA = {  # a 1B-ish config: the capacity preflight passes on one H100
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_size": 2048,
    "torch_dtype": "bfloat16",
}
KEEP = {"filler", "changelog.lock"}  # what may stay in .sbx: the ballast, an empty lock file


@dataclass
class Bed:
    server: str
    stack: Path
    repo: Path

    @property
    def sbx(self) -> Path:
        return self.stack / ".sbx"

    def run(self, *args: str, repo: bool = False, env: dict[str, str] | None = None) -> Any:
        extra = ["--repo", str(self.repo)] if repo else []
        return run_cli(self.server, *args, "--stack", str(self.stack), *extra, env=env)


@pytest.fixture(scope="module")
def bed(
    prefect_server: str, tmp_path_factory: pytest.TempPathFactory, run_id: str
) -> Iterator[Bed]:
    root = tmp_path_factory.mktemp("sbxfull")
    # the stack and its .sbx on one small disk, as on a box (a restore renames between them)
    with tmpfs(root / "disk", 4) as disk:
        stack = files_stack(disk / f"sbxfull-{run_id}")
        bed = Bed(prefect_server, stack, root / "repo")
        first = bed.run("backup", repo=True)
        assert first.returncode == 0, first.stderr[-3000:]
        bed.sbx.mkdir(exist_ok=True)
        yield bed


@pytest.fixture
def full(bed: Bed, hostile: Examples) -> Iterator[Bed]:
    """The bed's `.sbx` filled to the brim for the test's first command, freed by ``free``."""
    fill_to_brim(bed.sbx / "filler")
    hostile.tick()
    try:
        yield bed
    finally:
        (bed.sbx / "filler").unlink(missing_ok=True)


def free(bed: Bed) -> None:
    (bed.sbx / "filler").unlink()


def refill(bed: Bed, change: Callable[[], object]) -> None:
    """Make ``change`` to the stack with room, then fill the disk again."""
    free(bed)
    change()
    fill_to_brim(bed.sbx / "filler")


def assert_refused(done: Any, where: str = "/.sbx/") -> str:
    """Exit 1, no traceback, and the last line says where the disk is full and what to do."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "No space left on device writing " in last, last
    assert where in last and "Free space in " in last and "run the command again" in last, last
    return last


def leftovers(sbx: Path) -> list[str]:
    """Files in .sbx other than the ballast and empty lock files (staging, temporaries...)."""
    return sorted(
        str(p.relative_to(sbx))
        for p in sbx.rglob("*")
        if p.is_file()
        and p.name not in KEEP
        and not (p.name.endswith(".lock") and not p.stat().st_size)
    )


def tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_logs_setup(full: Bed) -> None:
    before = leftovers(full.sbx)
    done = full.run("logs", "setup")
    assert_refused(done)
    assert not (full.sbx / "logrotate.conf").exists()
    assert not (full.stack / "docker-compose.logging.yml").exists()
    assert leftovers(full.sbx) == before
    free(full)
    again = full.run("logs", "setup")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (full.sbx / "logrotate.conf").is_file()
    assert verify_changes(full.stack).intact


def test_logs_rotate(full: Bed) -> None:
    live = full.stack / "logs" / "app.log"
    refill(full, lambda: live.write_text("".join(f"line {i}\n" for i in range(2000))))
    before = leftovers(full.sbx)
    assert_refused(full.run("logs", "rotate", "--force"), "/logs/")  # the first write there
    assert live.read_text() == "".join(f"line {i}\n" for i in range(2000))  # nothing cut
    assert sorted(p.name for p in live.parent.glob("app.log*")) == ["app.log"]
    assert leftovers(full.sbx) == before
    free(full)
    again = full.run("logs", "rotate", "--force")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(live.parent.glob("app.log-*"))) == 1  # cut now


def test_incident_contain(full: Bed) -> None:
    keys = full.stack / "proxy" / "keys.txt"
    before_keys, before = keys.read_bytes(), leftovers(full.sbx)
    assert_refused(full.run("incident", "contain", "--revoke-key", "ops", "--yes"))
    assert keys.read_bytes() == before_keys  # the key still there: nothing was changed
    assert list_incidents(full.stack) == []  # no incident half opened
    assert leftovers(full.sbx) == before
    assert not [p for p in (full.sbx / "incidents").iterdir() if p.is_dir()]
    free(full)
    # the real revoke restarts the proxy, which needs Docker: the plan shows the next run works
    again = full.run("incident", "contain", "--revoke-key", "ops", "--dry-run")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "would revoke key ops" in again.stdout + again.stderr


def test_restore_in_place(full: Bed) -> None:
    notes = full.stack / "notes"
    refill(full, lambda: (notes / "onboarding.md").write_text("edited after the backup\n"))
    log = log_path(full.stack)
    live, log_before = tree(notes), log.read_bytes() if log.exists() else b""
    assert_refused(full.run("restore", "latest", "--in-place", "--part", "notes", repo=True))
    assert tree(notes) == live  # the live data was not touched
    assert not list(full.sbx.glob("restore-*")) and not (full.sbx / "swap.json").exists()
    assert not list(full.stack.glob("notes.pre-restore-*"))
    assert (log.read_bytes() if log.exists() else b"") == log_before
    # the next in-place restore waits for the stack's services to be healthy: that needs Docker


def test_restore_in_place_with_no_room_to_stage(bed: Bed, hostile: Examples) -> None:
    """Room for the change log, not for the restored data: the staging in .sbx fails, is
    named, and removed again; the live notes stay as they are."""
    big = bed.stack / "notes" / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    first = bed.run("backup", repo=True)
    assert first.returncode == 0, first.stderr[-3000:]
    big.write_bytes(b"changed since the backup\n")
    live = tree(bed.stack / "notes")
    filler = bed.sbx / "filler"
    fill_to_brim(filler)
    os.truncate(filler, filler.stat().st_size - (512 << 10))  # 512 KiB free
    hostile.tick()
    try:
        done = bed.run("restore", "latest", "--in-place", "--part", "notes", repo=True)
        last = assert_refused(done, "/.sbx/restore-")
        assert "the live data was not touched" in last, last
        assert tree(bed.stack / "notes") == live
        assert not list(bed.sbx.glob("restore-*")) and not (bed.sbx / "swap.json").exists()
        assert not (bed.sbx / "changelog.room").exists()
    finally:
        filler.unlink(missing_ok=True)
        big.unlink()


def test_model_swap(full: Bed, tmp_path: Path) -> None:
    """The preflight passes (a small model, a fake GPU with room); the change log's room is
    missing, so the swap refuses before the env file changes or the service restarts."""
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps({"gpus": [h100(0)]}))
    model = full.stack / "data" / "models" / "Small-1B"

    def small_model() -> None:
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps(LLAMA))
        size = 2 << 30  # sparse: 2 GiB of bf16 weights as the preflight reads them
        weights = {"dtype": "BF16", "shape": [size // 2], "data_offsets": [0, size]}
        header = json.dumps({"w": weights})
        with (model / "model.safetensors").open("wb") as f:
            f.write(struct.pack("<Q", len(header)) + header.encode())
            f.truncate(8 + len(header) + size)

    refill(full, small_model)
    env_file = full.stack / "env" / "stack.env"  # the worker's arguments come from it
    before = env_file.read_bytes()
    done = full.run("model", "swap", "--service", "worker", "--model", "Small-1B",
                    env={FAKE_ENV: str(spec)})  # fmt: skip
    assert_refused(done)
    assert "nothing was changed" in done.stderr
    assert env_file.read_bytes() == before
    assert not list(env_file.parent.glob("stack.env.*"))  # no pre-swap copy, no temporary
    # the swap itself restarts the service and asks it for the model: that needs Docker


def test_drill(full: Bed) -> None:
    done = full.run("drill", repo=True)
    last = assert_refused(done)
    assert "/.sbx/drills/" in last, last
    assert not [p for p in (full.sbx / "drills").iterdir()]  # the scratch folder is gone
    # the next drill needs Docker for its scratch project: not run here


def test_a_torn_change_log_line_is_never_left(bed: Bed, hostile: Examples) -> None:
    """append_durably on a disk that takes part of the line (a short write) cuts it off again:
    the change log stays exactly as it was and its chain intact."""
    path = log_path(bed.stack)
    append_change(bed.stack, action="config", target="test", after={"seed": True})
    fill_to_brim(bed.sbx / "filler")
    hostile.tick()
    try:
        before = path.read_bytes()
        room_in_page = -len(before) % 4096
        big = "x" * (room_in_page + 8192)  # more than the last page of the file still holds
        with pytest.raises(NoSpace, match=r"No space left on device writing .*changelog\.jsonl"):
            append_change(bed.stack, action="config", target="test", after={"blob": big})
        assert path.read_bytes() == before
        assert verify_changes(bed.stack).intact
    finally:
        (bed.sbx / "filler").unlink(missing_ok=True)
    entry = append_change(bed.stack, action="config", target="test", after={"ok": True})
    assert json.loads(path.read_bytes().splitlines()[-1])["seq"] == entry.seq
    assert verify_changes(bed.stack).intact


class _Engine:
    """A Docker engine stand-in: one running container; records stops and starts."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def service_container(self, project: str, service: str) -> Any:
        return type("Info", (), {"running": True, "id": "c" * 64, "name": f"{project}-{service}"})

    def stop(self, container_id: str, timeout_s: int) -> None:
        self.calls.append("stop")

    def start(self, container_id: str) -> None:
        self.calls.append("start")


def test_a_cold_copy_refuses_before_stopping(bed: Bed, hostile: Examples) -> None:
    """The stop marker is written before the stop: a full .sbx refuses with the service still
    running and no marker (or temporary) left that the next command would act on."""
    from tasks.services import MARKER_DIR, stopped_service

    engine = _Engine()
    fill_to_brim(bed.sbx / "filler")
    hostile.tick()
    try:
        before = leftovers(bed.sbx)
        with (
            pytest.raises(NoSpace, match="worker was not stopped"),
            stopped_service(engine, bed.stack, "p", "worker", "test") as running,  # type: ignore[arg-type]
        ):
            raise AssertionError(f"the body ran ({running})")
        assert engine.calls == []
        assert leftovers(bed.sbx) == before
    finally:
        (bed.sbx / "filler").unlink(missing_ok=True)
    with stopped_service(engine, bed.stack, "p", "worker", "test"):  # type: ignore[arg-type]
        assert list((bed.stack / MARKER_DIR).glob("*.json"))
    assert engine.calls == ["stop", "start"]
    assert not list((bed.stack / MARKER_DIR).iterdir())


def test_any_other_full_disk_is_one_line_at_the_cli(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], hostile: Examples
) -> None:
    """The last resort in sbx.cli.main: an ENOSPC no step translated still ends as one line
    naming the file (never a traceback), exit 1; other OSErrors stay what they are (bugs)."""
    import errno

    import sbx.cli

    def full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/stack/.sbx/some.json")

    hostile.tick()
    monkeypatch.setattr(sbx.cli, "app", full_disk)
    with pytest.raises(SystemExit) as ended:
        sbx.cli.main()
    assert ended.value.code == 1
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "No space left on device writing /srv/stack/.sbx/some.json" in lines[0], lines
    assert "Free space in /srv/stack/.sbx" in lines[0], lines

    def denied() -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/stack/.sbx/some.json")

    monkeypatch.setattr(sbx.cli, "app", denied)
    with pytest.raises(PermissionError):
        sbx.cli.main()


def test_log_rotation_refuses_before_a_cut_when_only_sbx_is_full(
    tmp_path: Path, hostile: Examples
) -> None:
    """The logs on a disk with room, `.sbx` (the rotation state) on a full one: the state's room
    is proven first, so no log is cut; with room again the same call rotates."""
    from blocks.config import LogsConfig
    from tasks.logs.directory import rotate_directory

    stack = tmp_path / "stack"
    logs = stack / "logs"
    logs.mkdir(parents=True)
    live = logs / "app.log"
    text = "".join(f"line {i}\n" for i in range(2000))
    live.write_text(text)
    settings = LogsConfig(max_size=1024, keep=10)
    with tmpfs(stack / ".sbx", 1) as sbx:
        fill_to_brim(sbx / "filler")
        hostile.tick()
        with pytest.raises(NoSpace, match="no log was cut"):
            rotate_directory(stack, logs, [live], settings, force=True)
        assert live.read_text() == text
        assert sorted(p.name for p in logs.iterdir()) == ["app.log"]
        assert leftovers(sbx) == []  # no state temporary either
        (sbx / "filler").unlink()
        report = rotate_directory(stack, logs, [live], settings, force=True)
        assert [f.action for f in report.files] == ["rotated"], report


def test_a_swap_refuses_before_its_first_rename(tmp_path: Path, hostile: Examples) -> None:
    """The swap journal (written before any rename of live data) on a full `.sbx`: NoSpace,
    the live path where it was, no journal or temporary for the next command to act on."""
    from tasks.restore.swap_journal import JOURNAL, swap_paths

    stack = tmp_path / "stack"
    (stack / "notes").mkdir(parents=True)
    (stack / "notes" / "a.md").write_text("live\n")
    with tmpfs(stack / ".sbx", 1) as sbx:
        fill_to_brim(sbx / "filler")
        hostile.tick()
        moves = [(stack / "notes", stack / "notes.pre-restore-x")]
        with pytest.raises(NoSpace, match="nothing was moved"):
            swap_paths(stack, moves, "in-place restore (test)", discard=[])
        assert (stack / "notes" / "a.md").read_text() == "live\n"
        assert not (stack / "notes.pre-restore-x").exists()
        assert not (stack / JOURNAL).exists() and leftovers(sbx) == []
