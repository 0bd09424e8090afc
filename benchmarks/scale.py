"""Scale: a stack with many small files and one huge sparse file, backed up and restored.

    uv run python benchmarks/scale.py [--files 100000] [--sparse-gib 20] [--json OUT] [--workdir D]
                                      [--command]

Makes ``stack/notes/`` with ``--files`` small files (1-4 KiB, in folders of 1,000) and
``stack/data/disk.img``, a ``--sparse-gib`` GiB sparse file with 1 MiB of data at its start,
middle and end; then, each in its own child process (so each peak RSS is its own), backs the
stack up into a new repository with the engine (``sbx.repository``), backs it up again
unchanged, lists both snapshots (what ``sbx snapshots`` reads), verifies both snapshots
(``verify --all``), and restores it into an empty directory, checking the restored tree (file
count, the sparse file's size, data and that it is still sparse). Prints one JSON object:
seconds, peak RSS (MiB, ``wait4``'s ``ru_maxrss`` of each child) and sizes.
``tests/faults/test_scale.py`` runs it and checks peak RSS <= 300 MiB.

``--command`` measures the whole ``sbx backup`` / ``sbx restore`` commands instead (Prefect
loaded, a flow run per command, against a local Prefect server this script starts in the work
directory and stops); the stack gets a compose file (one service, not running) and an
``sbx.toml`` with a part for ``data/disk.img``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
ROOT = Path(__file__).resolve().parents[1]


def make_stack(stack: Path, files: int, sparse_gib: int, seed: int = 9) -> None:
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    notes = stack / "notes"
    for index in range(files):
        folder = notes / f"d{index // 1000:04}"
        if index % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"n{index:06}.md").write_bytes(rng.randbytes(rng.randrange(1024, 4096)))
    data = stack / "data"
    data.mkdir(parents=True, exist_ok=True)
    size = sparse_gib * GiB
    with (data / "disk.img").open("wb") as out:
        for offset in (0, size // 2, size - MiB):
            out.seek(offset)
            out.write(rng.randbytes(MiB))
        out.truncate(size)


def _phase(phase: str, stack: Path, repo: Path, target: Path) -> dict[str, float]:
    """One phase in this process (the child): backup or restore with the engine."""
    from sbx.repository import Repository
    from sbx.repository.storage.local import LocalStorage

    started = time.monotonic()
    repository = Repository.open_or_init(LocalStorage(repo))
    if phase == "backup":
        with repository.writer(command="scale benchmark") as writer:
            writer.begin_snapshot(previous=repository.latest_snapshot(), stack_dir=stack)
            for name in ("notes", "data"):
                with writer.part(name, "copy") as part:
                    part.add_tree(stack / name, name)
            manifest = writer.commit()
        return {
            "seconds": time.monotonic() - started,
            "files": manifest.stats.files,
            "files_read": manifest.stats.files_read,
            "new_bytes": manifest.stats.new_bytes,
        }
    if phase == "snapshots":
        listed = [repository.snapshot_summary(i) for i in repository.list_snapshots()]
        return {"seconds": time.monotonic() - started, "snapshots": len(listed)}
    if phase == "verify_all":
        checked = repository.verify()
        return {
            "seconds": time.monotonic() - started,
            "snapshots": len(checked.snapshots),
            "files_checked": checked.files_checked,
            "damaged": len(checked.damaged),
        }
    report = repository.restore("latest", target)
    return {"seconds": time.monotonic() - started, "files": report.files, "bytes": report.bytes}


def run_phase(
    phase: str, stack: Path, repo: Path, target: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run a phase in a child process; its result plus the child's peak RSS in MiB.

    With ``env`` (``--command``), the phase is the ``sbx`` command itself, run with it."""
    if env is None:
        cmd = [sys.executable, __file__, "--phase", phase, str(stack), str(repo), str(target)]
    elif phase == "backup":
        cmd = [_sbx(), "backup", "--stack", str(stack), "--repo", str(repo)]
    elif phase == "snapshots":
        cmd = [_sbx(), "snapshots", "--json", "--stack", str(stack), "--repo", str(repo)]
    elif phase == "verify_all":
        cmd = [_sbx(), "verify", "--all", "--stack", str(stack), "--repo", str(repo)]
    else:
        cmd = [_sbx(), "restore", "latest", "--to", str(target), "--repo", str(repo)]
    started = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{phase} failed with exit status {child.returncode}")
    result: dict[str, float] = json.loads(out) if env is None else {}
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    result["process_seconds"] = time.monotonic() - started  # with Python start-up and imports
    return result


def _sbx() -> str:
    return str(Path(sys.executable).with_name("sbx"))


def command_env(work: Path) -> dict[str, str]:
    """The environment of the ``sbx`` commands: a Prefect server of their own in ``work``."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return env | {"SBX_HOME": str(work / "sbx-home"), "SBX_SERVER_PORT": str(port)}


def check_restore(stack: Path, target: Path, files: int) -> None:
    restored = sum(1 for _ in (target / "notes").rglob("*.md"))
    if restored != files:
        raise SystemExit(f"restored {restored} small files, expected {files}")
    original, copy = stack / "data" / "disk.img", target / "data" / "disk.img"
    st = copy.stat()
    if st.st_size != original.stat().st_size:
        raise SystemExit(f"the sparse file came back with {st.st_size} bytes")
    if st.st_blocks * 512 > 64 * MiB:
        raise SystemExit(f"the sparse file came back {st.st_blocks * 512} bytes allocated")
    with original.open("rb") as a, copy.open("rb") as b:
        for offset in (0, st.st_size // 2, st.st_size - MiB):
            a.seek(offset)
            b.seek(offset)
            if a.read(MiB) != b.read(MiB):
                raise SystemExit(f"the sparse file's data at {offset} differs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--sparse-gib", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--command", action="store_true", help="time the sbx commands")
    parser.add_argument("--phase", nargs=4, metavar=("PHASE", "STACK", "REPO", "TARGET"))
    args = parser.parse_args()
    if args.phase:
        phase, stack, repo, target = args.phase
        print(json.dumps(_phase(phase, Path(stack), Path(repo), Path(target))))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sbx-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    stack, repo, target = work / "stack", work / "repo", work / "restored"
    env = command_env(work) if args.command else None
    try:
        started = time.monotonic()
        make_stack(stack, args.files, args.sparse_gib)
        made = time.monotonic() - started
        if env is not None:
            (stack / "sbx.toml").write_text(
                '[parts.disk]\npaths = ["data/disk.img"]\nmethod = "copy"\n'
            )
            # a stack needs a compose file; its one service never runs here
            (stack / "docker-compose.yml").write_text("services:\n  tool:\n    image: busybox\n")
            subprocess.run([_sbx(), "server", "start"], env=env, check=True)
        result = {
            "files": args.files,
            "sparse_gib": args.sparse_gib,
            "measured": "sbx commands" if env is not None else "engine",
            "make_seconds": made,
            "backup": run_phase("backup", stack, repo, target, env),
            "backup_unchanged": run_phase("backup", stack, repo, target, env),
            "snapshots": run_phase("snapshots", stack, repo, target, env),
            "verify_all": run_phase("verify_all", stack, repo, target, env),
            "restore": run_phase("restore", stack, repo, target, env),
            "repo_mib": sum(p.stat().st_size for p in repo.rglob("*") if p.is_file()) / MiB,
            "cpus": os.cpu_count(),
            "self_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        started = time.monotonic()
        check_restore(stack, target, args.files)
        result["check_seconds"] = time.monotonic() - started
    finally:
        if env is not None:
            subprocess.run([_sbx(), "server", "stop"], env=env, check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
