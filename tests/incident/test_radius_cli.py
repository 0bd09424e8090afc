"""`sbx incident blast-radius` then `sbx incident contain` on a files-only stack (no containers),
through the CLI and the test's Prefect server: flagged findings, the saved report, the contain
plan in a dry run and carried out, the change log — and never a key value anywhere."""

from __future__ import annotations

import json
from pathlib import Path

from incident.conftest import Sbx
from incident.radius_seed import KEYS, OFF_LIST_URL, seed_files
from tasks.changelog import read_changes, verify_changes
from tasks.incident.keys import key_fingerprint, read_keys
from tasks.incident.record import current_incident, read_actions
from tasks.reports import artifact_key


def _artifacts(stack: Path) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [artifact_key("blast-radius", stack.name, part)
            for part in ("keys", "fetches", "collections")]  # fmt: skip
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    assert {a.key for a in found} == set(keys)
    return [json.dumps(a.data) for a in found]


def _assert_no_key_value(*texts: str) -> None:
    for text in texts:
        for name, value in KEYS.items():
            assert value not in text, f"the value of key {name} leaked"


def test_blast_radius_then_contain_from_it(files_stack: Path, run_sbx: Sbx) -> None:
    seeded = seed_files(files_stack)
    stack = ["--stack", str(files_stack)]
    early = run_sbx("incident", "contain", "--revoke-key", "agent", "--dry-run", *stack)
    assert early.returncode == 0, early.stderr
    assert early.stdout.splitlines()[0] == f"would revoke key agent ({seeded.leaked_fp}) in " \
        "proxy/keys.txt"  # fmt: skip
    assert current_incident(files_stack) is None  # a dry run opens no incident
    done = run_sbx("incident", "blast-radius", "--since", "2h", "--json", *stack)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    flagged = [k for k in report["api_keys"] if k["flagged"]]
    assert [(k["name"], k["fingerprint"]) for k in flagged] == [("agent", seeded.leaked_fp)]
    assert [f["url"] for f in report["off_list"]] == [OFF_LIST_URL]
    qdrant = {s["source"]: s for s in report["sources"]}
    assert qdrant["qdrant-log"]["error"]  # no qdrant container: said, not fatal
    incident = current_incident(files_stack)
    assert incident is not None and incident.id == report["incident_id"]
    saved = files_stack / ".sbx" / "incidents" / incident.id / "blast-radius.json"
    assert json.loads(saved.read_text())["api_keys"] == report["api_keys"]
    table = run_sbx("incident", "blast-radius", "--since", "2h", *stack)
    assert table.returncode == 0, table.stderr
    assert "FLAGGED" in table.stdout and "1 key(s) and 1 domain(s) flagged" in table.stderr

    keys_before = (files_stack / "proxy" / "keys.txt").read_text()
    allow = files_stack / "agents" / "internet-research" / "allowlist.txt"
    plan = run_sbx("incident", "contain", "--from-blast-radius", "--block-domain",
                   "en.wikipedia.org", "--dry-run", *stack)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    sentences = [
        "remove en.wikipedia.org from agents/internet-research/allowlist.txt",
        f"revoke key agent ({seeded.leaked_fp}) in proxy/keys.txt",
        "restart proxy so it reads proxy/keys.txt again",
    ]
    assert plan.stdout.splitlines() == [f"would {s}" for s in sentences]
    assert (files_stack / "proxy" / "keys.txt").read_text() == keys_before
    refused = run_sbx("incident", "contain", "--revoke-key", "agent", *stack)
    assert refused.returncode == 2 and "Pass --yes" in refused.stderr  # no terminal to ask on
    # #23 finding 4: without --from-blast-radius the saved report adds nothing, dry run or not
    told = run_sbx("incident", "contain", "--block-domain", "en.wikipedia.org", "--dry-run",
                   *stack)  # fmt: skip
    assert told.returncode == 0, told.stderr
    assert told.stdout.splitlines() == [f"would {sentences[0]}"]
    unknown = run_sbx("incident", "contain", "--revoke-key", "sha256:0123456789abcdef", "--yes",
                      *stack)  # fmt: skip
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "no key named 'sha256:0123456789abcdef'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert (files_stack / "proxy" / "keys.txt").read_text() == keys_before

    contain = run_sbx("incident", "contain", "--from-blast-radius", "--block-domain",
                      "en.wikipedia.org", "--yes", *stack)  # fmt: skip
    assert contain.returncode == 0, contain.stderr
    assert contain.stdout.splitlines() == [
        *sentences[:2],
        sentences[2] + ": it has no container (it reads the file when created)",
    ]
    assert [k.name for k in read_keys(files_stack / "proxy" / "keys.txt")] == ["ops", "webui"]
    assert "en.wikipedia.org" not in allow.read_text()
    changes = read_changes(files_stack)
    assert [(c.action, c.target) for c in changes] == [
        ("incident-block-domain", "agents/internet-research/allowlist.txt"),
        ("incident-revoke-key", "proxy/keys.txt"),
    ]  # the proxy has no container here: nothing restarted, said in the step's action
    assert changes[1].before == {"key": {"name": "agent", "fingerprint": seeded.leaked_fp}}
    assert verify_changes(files_stack).intact
    steps = [(a.step, a.summary) for a in read_actions(files_stack, incident.id)]
    assert steps[-3:] == [("contain", line) for line in contain.stdout.splitlines()]
    assert key_fingerprint(KEYS["agent"]) in json.dumps(
        [a.details for a in read_actions(files_stack, incident.id)]
    )

    # the property: no key value in any output, artifact, saved file or change-log entry
    sbx_files = [p.read_text() for p in (files_stack / ".sbx").rglob("*") if p.is_file()]
    _assert_no_key_value(
        *(d.stdout + d.stderr for d in (early, done, table, plan, refused, contain)),
        *_artifacts(files_stack), *sbx_files,
    )  # fmt: skip
