"""`sbx copy` end to end: copy off the box, then a fresh box restores, verifies and prunes from
the copy; the copy leaks no secret; a missing or wrong key writes nothing."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from bed.prefect_runs import flow_run_states
from helpers import decorate_stack, describe_tree

from offbox.conftest import Remote, Sbx
from offbox.keys import AgeKey, make_key

PARTS = ["docker-compose.yml", "env", "data/models", "notes", "agents", "logs"]


def _env(remote: Remote, key: AgeKey, **extra: str) -> dict[str, str]:
    return {
        **remote.env,
        "SBX_AGE_RECIPIENTS": key.recipient,
        "SBX_AGE_IDENTITY_FILE": str(key.file),
        **extra,
    }


def _ok(done: object) -> None:
    assert getattr(done, "returncode", 1) == 0, getattr(done, "stderr", "")[-3000:]


def test_copy_then_a_fresh_box_restores_byte_identical_and_nothing_leaks(
    run_sbx: Sbx,
    files_stack: Path,
    tmp_path: Path,
    remote: Remote,
    age_key: AgeKey,
    prefect_server: str,
) -> None:
    decorate_stack(files_stack)
    canary = f"CANARY-{secrets.token_hex(16)}"
    (files_stack / "env" / "secrets.env").write_text(f"API_TOKEN={canary}\n")
    repo = tmp_path / "repo"
    env = _env(remote, age_key)
    _ok(run_sbx("backup", "--stack", str(files_stack), "--repo", str(repo), env=env))
    copied = run_sbx("copy", "--stack", str(files_stack), "--repo", str(repo), "--to", remote.url,
                     env=env)  # fmt: skip
    _ok(copied)
    assert copied.stdout.strip().splitlines()[-1] == remote.url.removesuffix("/")

    # a fresh box: another stack directory, nothing but the environment and the key file
    fresh = tmp_path / "fresh-box"
    fresh.mkdir()
    listed = run_sbx("snapshots", "--stack", str(fresh), "--repo", remote.url, "--json", env=env)
    _ok(listed)
    _ok(run_sbx("verify", "--stack", str(fresh), "--repo", remote.url, env=env))
    out = tmp_path / "restored"
    _ok(run_sbx("restore", "latest", "--stack", str(fresh), "--repo", remote.url,
                "--to", str(out), env=env))  # fmt: skip
    assert describe_tree(out, PARTS) == describe_tree(files_stack, PARTS)

    stored = remote.read_all()
    assert len(stored) > 3
    for name, body in stored.items():
        assert canary not in name and canary.encode() not in body, name
    _assert_not_in_prefect(prefect_server, canary)


def _assert_not_in_prefect(api_url: str, canary: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    async def read() -> list[str]:
        texts: list[str] = []
        async with get_client() as client:
            offset = 0
            while batch := await client.read_logs(LogFilter(), limit=200, offset=offset):
                texts.extend(log.message for log in batch)
                offset += len(batch)
            for artifact in await client.read_artifacts():
                texts.append(str(artifact.data) + str(artifact.description))
        return texts

    texts = asyncio.run(read())
    assert any("copied" in t or "Off-box copy" in t for t in texts)  # the runs did log
    assert not [t for t in texts if canary in t]


def test_missing_or_wrong_identity_is_a_clear_error_and_writes_nothing(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, remote: Remote, age_key: AgeKey
) -> None:
    repo = tmp_path / "repo"
    env = _env(remote, age_key)
    _ok(run_sbx("backup", "--stack", str(files_stack), "--repo", str(repo), env=env))
    base = ["copy", "--stack", str(files_stack), "--repo", str(repo), "--to", remote.url]

    no_identity = {k: v for k, v in env.items() if k != "SBX_AGE_IDENTITY_FILE"}
    done = run_sbx(*base, env=no_identity)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "SBX_AGE_IDENTITY_FILE" in done.stderr and "Traceback" not in done.stderr
    assert remote.read_all() == {}

    stranger = make_key(tmp_path / "stranger")
    wrong = {**env, "SBX_AGE_IDENTITY_FILE": str(stranger.file)}
    done = run_sbx(*base, env=wrong)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "matches none of the recipients" in done.stderr and "Traceback" not in done.stderr
    assert remote.read_all() == {}

    _ok(run_sbx(*base, env=env))
    stored = remote.read_all()
    out = tmp_path / "restored"
    done = run_sbx("restore", "latest", "--repo", remote.url, "--to", str(out), env=wrong)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot decrypt" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    assert remote.read_all() == stored


def test_a_failed_copy_exits_1_and_its_flow_run_fails(
    run_sbx: Sbx, files_stack: Path, tmp_path: Path, age_key: AgeKey, prefect_server: str
) -> None:
    repo, offbox = tmp_path / "repo", tmp_path / "offbox"
    env = {"SBX_AGE_RECIPIENTS": age_key.recipient, "SBX_AGE_IDENTITY_FILE": str(age_key.file)}
    _ok(run_sbx("backup", "--stack", str(files_stack), "--repo", str(repo), env=env))
    victim = next(p for p in (repo / "objects").rglob("*") if p.is_file())
    victim.unlink()  # local damage: the snapshot cannot be copied whole
    done = run_sbx("copy", "--stack", str(files_stack), "--repo", str(repo), "--to", str(offbox),
                   env=env)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "is incomplete" in done.stderr and "verify --all" in done.stderr
    assert not list((offbox / "snapshots").glob("*"))  # no manifest of a partial snapshot
    assert flow_run_states("copy-offbox")[-1] == "FAILED"
