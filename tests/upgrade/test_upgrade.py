"""`sbx upgrade` / `sbx rollback` against a real stack, registry and Prefect server.

One worker-only stack for the module; the tests run in order and each starts from whatever
release the previous one left running (read from the container, never assumed).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import docker.errors
from bed import RunningStack, wait_until
from bed.prefect_runs import flow_run_states, newest_artifact
from bed.webhook import WebhookReceiver, save_webhook_block
from upgrade_bed import Releases, Sbx, changes, cli_env, journal, running_digest

from flows.runbook import stack_label
from tasks.reports import artifact_key


def _upgrade_rolls_back(
    release: str, gates: set[str], releases: Releases, stack: RunningStack, run_sbx: Sbx
) -> None:
    before = running_digest(releases.client, stack)
    logged = len(changes(stack.path))
    releases.publish(release)
    done = run_sbx("upgrade", "worker", timeout=400)
    assert done.returncode == 1, done.stdout + done.stderr
    new = changes(stack.path)[logged:]
    assert [c["action"] for c in new] == ["upgrade", "rollback"], new
    assert new[1]["after"]["images"] == {"worker": before}  # type: ignore[index]
    last = journal(stack.path)[-1]
    assert last["gate"] in gates, last
    assert f"rolled back: {last['gate']} failed" in done.stderr, done.stderr
    assert running_digest(releases.client, stack) == before
    assert last["state"] == "rolled-back"
    assert last["target"]["worker"]["digest"] == releases.digests[release]  # type: ignore[index]
    assert last["before"]["images"]["worker"]["digest"] == before  # type: ignore[index]
    assert not (stack.path / ".sbx" / "upgrade" / "open.json").exists()
    artifact = newest_artifact(artifact_key("upgrade", stack_label(str(stack.path))))
    assert artifact is not None and f"upgrade {last['id']}: rolled-back" in artifact[1], artifact
    assert last["gate"] in artifact[1]
    assert_worker_healthy(run_sbx)


def assert_worker_healthy(run_sbx: Sbx) -> None:
    """`sbx status` (only worker runs in this stack: the others are reported missing)."""
    done = run_sbx("status", "--json")
    worker = next(s for s in json.loads(done.stdout)["services"] if s["name"] == "worker")
    assert worker["problem"] is None, worker
    assert worker["health"] == "healthy", worker


def test_check_lists_a_moved_tag_and_changes_nothing(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    assert running_digest(releases.client, worker_stack) == releases.digests["v1"]
    releases.publish("v3")
    done = run_sbx("upgrade", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"worker: newer image {releases.digests['v3']}" in done.stdout, done.stdout
    assert running_digest(releases.client, worker_stack) == releases.digests["v1"]
    assert journal(worker_stack.path) == []
    releases.publish("v1")


def test_500_on_completion_rolls_back(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    _upgrade_rolls_back("v2-error", {"service:worker"}, releases, worker_stack, run_sbx)


def test_healthy_release_commits_and_rollback_returns(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    before = running_digest(releases.client, worker_stack)
    compose_file = (worker_stack.path / "docker-compose.yml").read_bytes()
    releases.publish("v3")
    done = run_sbx("upgrade", "worker", timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert running_digest(releases.client, worker_stack) == releases.digests["v3"]
    assert journal(worker_stack.path)[-1]["state"] == "committed"
    upgrade = changes(worker_stack.path)[-1]
    assert upgrade["action"] == "upgrade"
    assert upgrade["after"]["images"] == {"worker": releases.digests["v3"]}  # type: ignore[index]
    verify = run_sbx("changelog", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    pins = (worker_stack.path / ".sbx" / "upgrade" / "pins.yml").read_text()
    assert f"image: {releases.digests['v3']}" in pins
    assert (worker_stack.path / "docker-compose.yml").read_bytes() == compose_file  # not edited

    # a compose file edited by hand since the upgrade: the rollback refuses, changes nothing
    compose = worker_stack.path / "docker-compose.yml"
    compose.write_bytes(compose_file + b"# edited by hand after the upgrade\n")
    try:
        refused = run_sbx("rollback", "worker", timeout=400)
    finally:
        compose.write_bytes(compose_file)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "docker-compose.yml changed since upgrade" in refused.stderr, refused.stderr
    assert "--force" in refused.stderr
    assert running_digest(releases.client, worker_stack) == releases.digests["v3"]

    back = run_sbx("rollback", "worker", timeout=400)
    assert back.returncode == 0, back.stdout + back.stderr
    assert running_digest(releases.client, worker_stack) == before
    assert journal(worker_stack.path)[-1]["action"] == "rollback"


def test_missing_rollback_image_refuses_to_start(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    before = running_digest(releases.client, worker_stack)
    entries = len(journal(worker_stack.path))
    image_id = releases.client.images.get(before).id
    # untag every name of the running image: its layers stay (the container uses them), but
    # no repo@sha256 names it any more, so nothing could be rolled back to
    for tag in releases.client.images.get(image_id).tags:
        releases.client.images.remove(tag, force=True)
    with contextlib.suppress(docker.errors.ImageNotFound):  # gone with its last tag, usually
        releases.client.api.remove_image(before, force=True)
    assert releases.client.images.get(image_id).attrs["RepoDigests"] == []
    releases.publish("v3")
    try:
        done = run_sbx("upgrade", "worker")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "rollback image" in done.stderr or "no registry digest" in done.stderr, done.stderr
        assert "nothing was changed" in done.stderr.lower() or "try again" in done.stderr
        assert (
            releases.client.containers.list(
                filters={"label": f"com.docker.compose.project={worker_stack.project}"}
            )[0].attrs["Image"]
            == image_id
        )
        assert len(journal(worker_stack.path)) == entries
    finally:
        releases.client.images.pull(releases.repository, tag=before.split("@")[1])
        release = next(r for r, d in releases.digests.items() if d == before)
        releases.client.images.get(before).tag(releases.repository, release)


def test_kill_9_during_upgrade_is_finished_by_the_next_command(
    releases: Releases,
    worker_stack: RunningStack,
    run_sbx: Sbx,
    prefect_server: str,
    tmp_path: Path,
) -> None:
    before = running_digest(releases.client, worker_stack)
    releases.publish("v2-slow")
    open_entry = worker_stack.path / ".sbx" / "upgrade" / "open.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sbx", "upgrade", "worker", "--stack", str(worker_stack.path)],
        env=cli_env(prefect_server, worker_stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        gating = wait_until(
            lambda: open_entry.exists() and json.loads(open_entry.read_text())["phase"] == "gating",
            timeout=180,
        )
        assert gating, "the upgrade never reached its gate"
    finally:
        proc.kill()  # SIGKILL: no finally, no hook runs
        proc.wait()
    assert running_digest(releases.client, worker_stack) == releases.digests["v2-slow"]

    # a read-only command finishes it first (issue #6: "then any sbx command"), in a flow run
    status = run_sbx("status")
    assert "left this stack unfinished" in status.stderr, status.stderr
    assert "rolled-back" in status.stderr, status.stderr
    assert not open_entry.exists(), status.stdout + status.stderr
    last = journal(worker_stack.path)[-1]
    assert (last["state"], last["gate"]) == ("rolled-back", "interrupted"), last
    assert running_digest(releases.client, worker_stack) == before
    assert flow_run_states("reconcile-stack")[-1:] == ["COMPLETED"]
    again = run_sbx("status")  # nothing left: no second repair
    assert "unfinished" not in again.stderr, again.stderr
    assert_worker_healthy(run_sbx)


def test_crash_loop_rolls_back(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    _upgrade_rolls_back(
        "v2-crash", {"container:worker", "service:worker"}, releases, worker_stack, run_sbx
    )


def test_start_slower_than_the_soak_window_rolls_back(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx
) -> None:
    _upgrade_rolls_back(
        "v2-slow", {"container:worker", "service:worker"}, releases, worker_stack, run_sbx
    )


def test_rollback_whose_gate_fails_too_ends_failed_and_alerts(
    releases: Releases, worker_stack: RunningStack, run_sbx: Sbx, run_id: str
) -> None:
    env_file = worker_stack.path / "env" / "worker.env"
    original = env_file.read_text()
    config = worker_stack.path / "sbx.toml"
    try:
        with WebhookReceiver() as receiver:
            block = save_webhook_block(f"sbx-upgrade-{run_id}", receiver.url)
            config.write_text(f'[alerts.pager]\nblock = "{block}"\n')
            # the env file changed under the running release: whatever is recreated now fails
            env_file.write_text(original + "STANDIN_FAIL_MODE=error\n")
            releases.publish("v2-error")
            done = run_sbx("upgrade", "worker", timeout=400)
            subjects = [a["subject"] for a in receiver.take()]
        assert done.returncode == 1, done.stdout + done.stderr
        assert "rollback failed" in done.stderr.lower(), done.stderr
        last = journal(worker_stack.path)[-1]
        assert last["state"] == "rollback-failed", last
        assert sum("rollback failed" in s for s in subjects) == 1, subjects
    finally:
        env_file.write_text(original)
        config.unlink(missing_ok=True)
        releases.publish("v1")  # the compose file's tag names v1 again
        worker_stack.compose("up", "-d", "--wait", "--force-recreate", "worker", timeout=150)
    assert_worker_healthy(run_sbx)
