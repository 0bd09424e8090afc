"""Child process of the file-race faults: a backup during which a second thread changes a file.

    python env_race_child.py SCENARIO WORKDIR

``WORKDIR/stack/<dir>/`` holds ``a-big.bin`` (incompressible, so reading it takes a while), then
the victim file(s), names sorted. The walk lists the directory (and stats every child) before
reading any file; a watcher thread waits until the backup has ``a-big.bin`` open (seen in
``/proc/self/fd``) and then acts on the victim, which the backup reaches only after it closes
``a-big.bin``: a real race between walk and read, made certain, with no hook in sbx.

Scenarios: ``vanish`` (victim unlinked), ``unreadable`` (victim chmod 000; run this child
without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, or root reads it anyway), ``grow`` (the victim is
``a-big.bin`` itself, appended to while it is read), ``rotate`` (``app.log`` renamed to
``app.log.1`` and a new ``app.log`` created, logrotate's default ``create`` method).

Prints one JSON object: whether the watcher acted while the file was open, the part's status,
reason and warnings, the entries (path -> size, read_size, whether it kept a stat key), the
snapshot id and the repository.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from sbx.errors import SbxError
from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage

MiB = 1 << 20
DIRS = {"vanish": "notes", "unreadable": "notes", "grow": "logs", "rotate": "logs"}


def make_tree(scenario: str, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "a-big.bin").write_bytes(os.urandom(32 * MiB))
    if scenario == "rotate":
        (folder / "app.log").write_bytes(b"old line\n" * 100_000)
    else:
        (folder / "victim.txt").write_bytes(b"victim\n" * 1000)
    (folder / "z-after.txt").write_text("read after the victim\n")


def act(scenario: str, folder: Path) -> None:
    if scenario == "vanish":
        (folder / "victim.txt").unlink()
    elif scenario == "unreadable":
        (folder / "victim.txt").chmod(0)
    elif scenario == "grow":
        with (folder / "a-big.bin").open("ab") as out:
            out.write(b"appended while read\n" * 50_000)
    elif scenario == "rotate":
        (folder / "app.log").rename(folder / "app.log.1")
        (folder / "app.log").write_bytes(b"new line\n")
    else:
        raise SystemExit(f"unknown scenario {scenario}")


def watch(scenario: str, folder: Path, acted: dict[str, bool], stop: threading.Event) -> None:
    """Act on the victim once a-big.bin is open in this process (the backup is reading it)."""
    big = str(folder / "a-big.bin")
    while not stop.is_set():
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target == big:
                act(scenario, folder)
                # still open after acting: the backup reads the victim only after closing it
                acted["while_open"] = target == _readlink(f"/proc/self/fd/{fd}")
                return
        time.sleep(0.0005)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def main() -> None:
    scenario, work = sys.argv[1], Path(sys.argv[2])
    name = DIRS[scenario]
    folder = work / "stack" / name
    make_tree(scenario, folder)
    repo = Repository.open_or_init(LocalStorage(work / "repo", fsync=False))
    acted: dict[str, bool] = {"while_open": False}
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(scenario, folder, acted, stop), daemon=True)
    watcher.start()
    with repo.writer(command=f"race {scenario}") as writer:
        writer.begin_snapshot(stack_dir=work / "stack")
        with writer.part(name, "copy") as part:
            try:  # what tasks/backup/capture.py does with a part's error
                part.add_tree(folder, name)
            except SbxError as exc:
                part.fail(str(exc))
        manifest = writer.commit()
    stop.set()
    watcher.join()
    record = manifest.parts[0]
    print(
        json.dumps(
            {
                "acted_while_open": acted["while_open"],
                "status": record.status,
                "reason": record.reason,
                "warnings": record.warnings,
                "skipped": record.stats.skipped,
                "entries": {
                    e.path: {"size": e.size, "read_size": e.read_size, "keyed": bool(e.stat_key)}
                    for e in record.entries
                    if e.type == "file"
                },
                "snapshot": manifest.id,
                "repo": str(work / "repo"),
            }
        )
    )


if __name__ == "__main__":
    main()
