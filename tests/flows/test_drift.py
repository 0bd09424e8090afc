"""Config drift and `sbx diff` on real backups of a files-only stack (no containers).

One module fixture: a first backup; then, by hand, an agent allowlist edited, a key added to the
proxy's keys file and a value changed in an env file (distinctive canary values), and a model
swap's env edit that sbx's change log explains; a backup of one part (no configuration in
it); a second backup; then a third with nothing changed. Alerts go to a webhook receiver
through a real notification block."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bed.local_prefect import copy_files_stack
from bed.webhook import WebhookReceiver, save_webhook_block
from faults.input_helpers import CliResult, invoke

from tasks.changelog import append_change, read_changes

ALLOWLIST = "agents/internet-research/allowlist.txt"
KEYS = "proxy/keys.txt"
ENV = "env/stack.env"  # the example keeps its model settings there
SWAPPED = "env/watchdog.env"


@dataclass(frozen=True)
class Nights:
    stack: Path
    repo: Path
    env: dict[str, str]
    canary: str
    ids: list[str]
    outputs: list[CliResult]
    alerts: list[list[dict[str, Any]]]  # what the webhook got during each backup
    started: datetime  # before the first backup: the server is shared by the whole session

    def sbx(self, *args: str) -> CliResult:
        return invoke(list(args), self.env)


def _backup(stack: Path, repo: Path, env: dict[str, str]) -> CliResult:
    done = invoke(["backup", "--stack", str(stack), "--repo", str(repo), "--json"], env)
    assert done.exception is None and done.exit_code == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def nights(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nights]:
    place = tmp_path_factory.mktemp("drift")
    started = datetime.now(UTC)
    stack = copy_files_stack(place / f"files-{place.name}")
    repo = place / "repo"
    env = {"PREFECT_API_URL": prefect_server, "SBX_HOME": str(place / "home"), "COLUMNS": "80"}
    canary = f"CANARY-{place.name}-d3adb33f"
    with WebhookReceiver() as receiver:
        block = save_webhook_block(f"sbx-drift-{place.name}", receiver.url)
        (stack / "sbx.toml").write_text(f'[alerts.pager]\nblock = "{block}"\n')
        outputs = [_backup(stack, repo, env)]
        alerts = [receiver.take()]
        with (stack / ALLOWLIST).open("a") as allowlist:
            allowlist.write("pastebin.com\n")
        with (stack / KEYS).open("a") as keys:
            keys.write(f"intruder {canary}-key\n")
        text = (stack / ENV).read_text()
        edited = text.replace("WORKER_MAX_MODEL_LEN=4096", f"WORKER_MAX_MODEL_LEN={canary}")
        assert edited != text
        (stack / ENV).write_text(edited)
        # what `sbx model swap` did before the example's models moved to env/stack.env: edited
        # env/<service>.env and said so in the change log (such entries still explain it)
        swapped = (stack / SWAPPED).read_text() + "MODEL=another/model\n"
        (stack / SWAPPED).write_text(swapped)
        append_change(stack, action="model-swap", target="watchdog", before={}, after={})
        # a partial backup between the nights (as an upgrade's pre-upgrade snapshot is): the
        # next night still compares with the last one that held the configuration
        partial = invoke(["backup", "--stack", str(stack), "--repo", str(repo), "--part",
                          "notes"], env)  # fmt: skip
        assert partial.exit_code == 0, partial.stderr[-3000:]
        for _ in range(2):
            outputs.append(_backup(stack, repo, env))
            alerts.append(receiver.take())
    ids = [json.loads(o.stdout)["snapshot_id"] for o in outputs]
    yield Nights(stack, repo, env, canary, ids, outputs, alerts, started)


def _drift(stack: Path) -> list[Any]:
    return [e for e in read_changes(stack) if e.action == "drift"]


def test_each_hand_edit_is_one_change_log_entry_naming_keys_not_values(nights: Nights) -> None:
    entries = {e.target: e for e in _drift(nights.stack)}
    assert sorted(entries) == sorted([ALLOWLIST, KEYS, ENV])  # not the swap sbx explained
    env = entries[ENV]
    assert env.after["keys_changed"]["changed"] == ["WORKER_MAX_MODEL_LEN"]
    assert env.after["code"] == "M"
    assert env.before["hash"] != env.after["new_hash"] and env.before["hash"]
    assert entries[KEYS].after["keys_changed"]["added"] == ["intruder"]
    assert entries[ALLOWLIST].after["keys_changed"]["lines_added"] == 1
    assert {e.after["snapshot"] for e in entries.values()} == {nights.ids[1]}


def test_an_unchanged_night_adds_no_entry(nights: Nights) -> None:
    report = json.loads(nights.outputs[2].stdout)
    assert report["drift"] == [] and nights.alerts[2] == []
    assert all(e.after["snapshot"] == nights.ids[1] for e in _drift(nights.stack))
    assert json.loads(nights.outputs[0].stdout)["drift"] == []  # no previous snapshot


def test_allowlist_and_proxy_keys_alert_and_the_env_change_does_not(nights: Nights) -> None:
    subjects = sorted(a["subject"] for a in nights.alerts[1])
    name = nights.stack.name
    assert subjects == sorted(f"[sbx] CONFIG CHANGED {p} on {name}" for p in (ALLOWLIST, KEYS))
    assert all("Next step:" in a["body"] for a in nights.alerts[1])


def test_no_value_in_any_log_artifact_report_or_change_log(nights: Nights) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        LogFilter,
        LogFilterLevel,
        LogFilterTimestamp,
    )

    key = f"backup-{nights.stack.name}".lower()
    # this module's warnings only: the API's page is the first 200 of the session's, which a
    # full CI run fills before this module runs; and the runs' log lines reach the server in
    # batches, a while after the backups returned
    since = LogFilter(
        level=LogFilterLevel(ge_=30), timestamp=LogFilterTimestamp(after_=nights.started)
    )
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
        while True:
            logs = [log.message for log in client.read_logs(log_filter=since, limit=200)]
            if any(f"config drift: M {ENV}" in m for m in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    markdown = "\n".join(str(a.data) for a in artifacts)
    # it does show drift
    assert f"M {ENV} (content; size; keys changed: WORKER_MAX_MODEL_LEN)" in markdown
    said = [
        markdown,
        (nights.stack / ".sbx" / "changelog.jsonl").read_text(),
        *(o.stdout + o.stderr for o in nights.outputs),
        *(json.dumps(a) for night in nights.alerts for a in night),
    ]
    # the terminal says it too, on stderr even with --json (sbx's own line: whether Prefect's
    # log lines reach the terminal depends on how this process set logging up before)
    assert "config drift: 3 file(s) changed outside sbx" in nights.outputs[1].stderr
    assert any(f"config drift: M {ENV}" in message for message in logs), logs  # the run's log too
    said += logs
    for text in said:
        assert nights.canary not in text


def test_diff_reads_the_manifests_alone_and_prints_as_restic_does(
    nights: Nights, tmp_path: Path
) -> None:
    bare = tmp_path / "repo"  # without its objects: a diff that read one would fail
    shutil.copytree(nights.repo, bare, ignore=shutil.ignore_patterns("objects"))
    first, second = nights.ids[0], nights.ids[1][:-3]  # a whole id and a unique start of one
    done = nights.sbx("diff", first, second, "--repo", str(bare), "--stack", str(nights.stack))
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"comparing snapshot {first} to {nights.ids[1]}:"
    size = (nights.stack / ALLOWLIST).stat().st_size
    assert f"M    {ALLOWLIST}  (content, size {size - 13} B → {size} B)" in lines
    assert any(line.startswith(f"M    {ENV}  (content") for line in lines)
    assert "+    .sbx/changelog.jsonl" in lines  # the model swap's entry started it
    assert "Files:      1 new,     0 removed,     4 changed" in lines, done.stdout
    assert all(len(line) <= 80 for line in lines)  # COLUMNS=80 below


def test_diff_json_is_the_whole_diff_and_part_limits_it(nights: Nights) -> None:
    a, b = nights.ids[0], "latest"
    base = ["--repo", str(nights.repo), "--stack", str(nights.stack), "--json"]
    whole = json.loads(nights.sbx("diff", a, b, *base).stdout)
    assert whole["b"] == nights.ids[2] and whole["counts"]["files_changed"] == 4
    only = json.loads(nights.sbx("diff", a, b, "--part", "agent-configs", *base).stdout)
    assert [(c["code"], c["path"]) for c in only["changes"]] == [("M", ALLOWLIST)]
    assert nights.sbx("diff", b, b, *base).stdout.count('"code"') == 0
    wrong = nights.sbx("diff", a, b, "--part", "nope", *base)
    assert wrong.exit_code == 2 and "neither snapshot holds part nope" in wrong.stderr
    missing = nights.sbx("diff", "2099", b, *base[:-1])
    assert missing.exit_code == 2 and "No snapshot 2099" in missing.stderr
