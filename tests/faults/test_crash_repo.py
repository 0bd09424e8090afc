"""SIGKILL and SIGTERM at seeded moments of prunes (with garbage collection) and of encrypted
off-box copies to S3 (moto over HTTP): the repository verifies after each, no partial snapshot is
listed, a rerun completes, and a copy never sends a key twice.

Forked trials (crash_helpers.TrialServer) run the flows as the CLI does; one trial of each kind
goes through the real `sbx` CLI. Rerun with SBX_FAULT_SEED=<seed> (named in every failure).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest
from bed import S3Server
from bed.fault_proxy import FaultProxy, Request

from blocks.config import load_config
from sbx.repository import Repository
from tasks.repository import open_encrypted

from .crash_helpers import Child, TrialServer, base_seed, kill_at, lock_pid, repository_problems
from .env_helpers import files_stack as copy_files_stack
from .figures import FaultFigures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))
from helpers import SBX, cli_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from offbox.keys import AgeKey, make_key

SEED = 20261128
PRUNE_TRIALS = 10
COPY_TRIALS = 10
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"
KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture
def files_stack(tmp_path: Path) -> Path:
    """The example stack's files, no containers (prune and copy work on the repository)."""
    return copy_files_stack(tmp_path / "stack")


@pytest.fixture
def trials(prefect_server: str, tmp_path: Path) -> Iterator[TrialServer]:
    (tmp_path / "logs").mkdir()
    server = TrialServer(cli_env(prefect_server), tmp_path / "logs")
    yield server
    server.close()


def _sbx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SBX, *args], env=env, capture_output=True, text=True, timeout=300)


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*SBX, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill_cli(proc: subprocess.Popen[bytes], delay_s: float, sig: signal.Signals) -> str:
    try:
        proc.wait(delay_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        proc.wait(120)
        return sig.name
    return "finished" if proc.returncode == 0 else "failed"


def _snapshot(repo: Repository, src: Path, rng: Random) -> None:
    """One snapshot of fresh random files (written through the engine: setup, not a trial)."""
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for n in range(3):
        (src / f"blob-{n}.bin").write_bytes(rng.randbytes(600 * KiB))
    with repo.writer(command="crash suite setup") as writer:
        writer.begin_snapshot(previous=None, stack_dir=src)
        with writer.part("notes", "copy") as part:
            part.add_tree(src, "notes")
        writer.commit()


def test_prunes_killed_at_seeded_moments(
    trials: TrialServer,
    files_stack: Path,
    prefect_server: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    seed = base_seed(SEED)
    rng = Random(seed)
    data = Random(seed + 1)  # content, drawn apart from the kill moments
    repo_dir = tmp_path / "repo"
    # small chunks: each snapshot owns ~100 objects, so garbage collection takes a while
    repo = Repository.open_or_init(repo_dir, chunk_size=16 * KiB, small_file_limit=16 * KiB)
    src = tmp_path / "src"
    lock = repo_dir / "locks" / "writer.json"
    env = cli_env(prefect_server)

    def prune(keep: int) -> Child:
        return trials.start("prune", stack=str(files_stack), repo=str(repo_dir), keep_last=keep)

    for _ in range(3):
        _snapshot(repo, src, data)
    started = time.monotonic()
    assert prune(2).wait() == 0
    clean_s = time.monotonic() - started
    outcomes: Counter[str] = Counter()
    partial = 0
    for trial in range(PRUNE_TRIALS + 1):
        sig = signal.SIGTERM if rng.random() < 0.35 else signal.SIGKILL
        in_gc = rng.random() < 0.6  # most kills once the lock is taken: deletes under way
        delay = rng.uniform(0.0, 0.3) if in_gc else rng.uniform(0.0, clean_s * 1.1)
        cli = trial == PRUNE_TRIALS
        where = f"SBX_FAULT_SEED={seed} prune trial {trial} ({sig.name}, in gc: {in_gc})"
        for _ in range(2):
            _snapshot(repo, src, data)
        if cli:
            proc = _popen(env, "prune", "--keep-last", "2", "--keep-daily", "0",
                          "--keep-weekly", "0", "--keep-monthly", "0",
                          "--stack", str(files_stack), "--repo", str(repo_dir))  # fmt: skip
            while in_gc and not lock.exists() and proc.poll() is None:
                time.sleep(0.002)
            outcome = _kill_cli(proc, delay, sig)
        else:
            child = prune(2)
            if in_gc:
                child.wait_for(lock.exists)
            outcome = kill_at(child, delay, sig)
            assert outcome != "failed", f"{where}: {child.tail()}"
        outcomes[outcome] += 1
        assert outcome != "failed", where
        if outcome == "SIGTERM":
            pid = proc.pid if cli else child.pid
            holder = lock_pid(lock.read_bytes() if lock.exists() else None)
            assert holder != pid, f"{where}: SIGTERM kept the writer lock"
        if trial % 4 == 3:  # the CLI's verify, for some trials
            verified = _sbx(env, "verify", "--all", "--repo", str(repo_dir))
            assert verified.returncode == 0, f"{where}: {verified.stderr[-3000:]}"
        found, problems = repository_problems(str(repo_dir))
        partial += found
        assert not problems, f"{where}: {problems[:5]}"
    # the rerun: a prune that is not interrupted finishes the job (no garbage is left behind)
    assert prune(2).wait() == 0
    gc = repo.collect_garbage(dry_run=True)
    assert gc.objects_deleted == 0, f"SBX_FAULT_SEED={seed}: garbage left: {gc}"
    assert len(repo.list_snapshots()) == 2
    fault_figures.add(request.node.name, trials_run=PRUNE_TRIALS + 1, partial_snapshots=partial)
    print(f"prune trials (seed {seed}): {dict(outcomes)}, clean prune {clean_s:.1f} s")


# -- off-box copy --------------------------------------------------------------------------------


def _stored_puts(requests: list[Request]) -> Counter[str]:
    """Keys the server stored (PUT answered 200), lock files left out."""
    return Counter(
        r.path
        for r in requests
        if r.method == "PUT" and "/locks/" not in r.path and r.reached_server and r.status == 200
    )


def test_copies_killed_at_seeded_moments(
    trials: TrialServer,
    files_stack: Path,
    prefect_server: str,
    s3_server: S3Server,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = base_seed(SEED + 1)
    rng = Random(seed)
    data = Random(seed + 1)
    key: AgeKey = make_key(tmp_path / "keys")
    bucket = s3_server.make_bucket()
    url = f"s3://{bucket}/crash"
    repo_dir = tmp_path / "repo"
    s3 = s3_server.client()
    with FaultProxy(s3_server.endpoint_url, fault_rate=0.0, seed=seed) as proxy:
        settings = {
            **s3_server.env(),
            "AWS_ENDPOINT_URL": proxy.url,
            "SBX_AGE_RECIPIENTS": key.recipient,
            "SBX_AGE_IDENTITY_FILE": str(key.file),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        env = cli_env(prefect_server, settings)
        # small chunks: two snapshots of ~130 objects, enough for every trial to cut a copy short
        Repository.open_or_init(repo_dir, chunk_size=64 * KiB, small_file_limit=64 * KiB)
        for version in range(2):
            (files_stack / "notes" / f"v{version}.bin").write_bytes(data.randbytes(4 * MiB))
            backup = trials.start("backup", stack=str(files_stack), repo=str(repo_dir))
            assert backup.wait() == 0, backup.tail()
        proxy.reset()

        def remote() -> Repository:
            return Repository.open(open_encrypted(load_config(files_stack), url))

        outcomes: Counter[str] = Counter()
        partial = resent = 0
        stored_before: set[str] = set()
        for trial in range(COPY_TRIALS + 1):
            sig = signal.SIGTERM if rng.random() < 0.35 else signal.SIGKILL
            after_puts = rng.randint(1, 6)  # kill once this many more objects were stored
            delay = rng.uniform(0.0, 0.2)
            cli = trial == COPY_TRIALS
            where = f"SBX_FAULT_SEED={seed} copy trial {trial} ({sig.name}, after {after_puts})"
            start = len(proxy.requests)

            def sent_enough(start: int = start, after: int = after_puts) -> bool:
                return len(_stored_puts(list(proxy.requests)[start:])) >= after

            if cli:
                proc = _popen(env, "copy", "--stack", str(files_stack), "--repo", str(repo_dir),
                              "--to", url)  # fmt: skip
                while not sent_enough() and proc.poll() is None:
                    time.sleep(0.005)
                outcome = _kill_cli(proc, delay, sig)
            else:
                child = trials.start("copy", env=settings, stack=str(files_stack),
                                     repo=str(repo_dir), to=url)  # fmt: skip
                child.wait_for(sent_enough)
                outcome = kill_at(child, delay, sig)
                assert outcome != "failed", f"{where}: {child.tail()}"
            outcomes[outcome] += 1
            assert outcome != "failed", where
            time.sleep(0.5)  # PUTs in flight when the client died still reach moto
            this_trial = list(proxy.requests)[start:]
            again = {r.path for r in this_trial if r.method == "PUT" and r.path in stored_before}
            resent += len(again)
            assert not again, f"{where}: sent again: {sorted(again)[:5]}"
            stored_before |= set(_stored_puts(this_trial))
            if outcome == "SIGTERM":
                pid = proc.pid if cli else child.pid
                try:
                    raw = s3.get_object(Bucket=bucket, Key="crash/locks/writer.json")["Body"].read()
                except s3.exceptions.NoSuchKey:
                    raw = None
                assert lock_pid(raw) != pid, f"{where}: SIGTERM kept the remote's lock"
            repository = remote()
            for snapshot_id in repository.list_snapshots():  # only whole snapshots are listed
                try:
                    repository.load_snapshot(snapshot_id)
                except Exception as exc:
                    partial += 1
                    raise AssertionError(f"{where}: {snapshot_id} is partial: {exc}") from exc
        # the rerun completes, sends nothing already there, and the remote verifies
        start = len(proxy.requests)
        rerun = _sbx(env, "copy", "--stack", str(files_stack), "--repo", str(repo_dir),
                     "--to", url)  # fmt: skip
        assert rerun.returncode == 0, f"SBX_FAULT_SEED={seed}: {rerun.stderr[-3000:]}"
        again = {
            r.path
            for r in list(proxy.requests)[start:]
            if r.method == "PUT" and r.path in stored_before
        }
        assert not again, f"SBX_FAULT_SEED={seed}: the rerun sent again: {sorted(again)[:5]}"
        assert max(_stored_puts(list(proxy.requests)).values()) == 1
        verified = _sbx(env, "verify", "--all", "--stack", str(files_stack), "--repo", url)
        assert verified.returncode == 0, f"SBX_FAULT_SEED={seed}: {verified.stderr[-3000:]}"
        found, problems = repository_problems(remote().storage)
        assert not problems, problems[:5]
        assert len(remote().list_snapshots()) == 2
    fault_figures.add(
        request.node.name, trials_run=COPY_TRIALS + 1, partial_snapshots=partial + found
    )
    print(f"copy trials (seed {seed}): {dict(outcomes)}, keys sent twice: {resent}")
