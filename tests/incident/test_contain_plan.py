"""Contain's plan: what it would revoke, block and recreate, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks.config import load_config
from incident.radius_seed import KEYS
from sbx.errors import ContainRefused
from tasks.changelog import append_change
from tasks.incident.contain import (
    clean_digests,
    normalise_domain,
    plan_containment,
    plan_orders,
    remove_domain,
)
from tasks.incident.keys import key_fingerprint
from tasks.incident.radius import BlastRadiusReport, KeyUse
from tasks.incident.record import open_or_current
from tasks.incident.sources import save_blast_radius
from tasks.upgrade.journal import JournalEntry, Release, ServiceImage, close_entry

ALLOW = "# hosts\nen.wikipedia.org\n*.Exfil.Example  # added by mistake\nattacker.test\n"


def _stack(tmp_path: Path) -> Path:
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy" / "keys.txt").write_text("".join(f"{n} {v}\n" for n, v in KEYS.items()))
    allow = tmp_path / "agents" / "internet-research" / "allowlist.txt"
    allow.parent.mkdir(parents=True)
    allow.write_text(ALLOW)
    return tmp_path


def _release(**digests: str) -> Release:
    images = {
        s: ServiceImage(service=s, image_ref=f"r/{s}:1", digest=d) for s, d in digests.items()
    }
    return Release(images=images, compose_files={}, env_fingerprints={}, models={})


def test_plan_names_keys_by_name_and_fingerprint_and_refuses_unknown_names(
    tmp_path: Path,
) -> None:
    config = load_config(_stack(tmp_path))
    fp = key_fingerprint(KEYS["agent"])
    plan = plan_containment(config, revoke=["agent", fp], block=[], recreate=[], report=None)
    assert [(k.name, k.fingerprint) for k in plan.revoke] == [("agent", fp)]
    assert plan.restart == ["proxy"]
    assert plan.sentences() == [
        f"revoke key agent ({fp}) in proxy/keys.txt",
        "restart proxy so it reads proxy/keys.txt again",
    ]
    revoked = key_fingerprint("x")
    append_change(
        tmp_path, action="incident-revoke-key", target="proxy/keys.txt",
        before={"key": {"name": "x", "fingerprint": revoked}}, after={"key": None},
    )  # fmt: skip
    gone = plan_containment(config, revoke=[revoked], block=[], recreate=[], report=None)
    assert gone.empty and "already revoked" in gone.notes[0]
    with pytest.raises(ContainRefused, match=r"no key named 'nobody'.*ops, webui, agent"):
        plan_containment(config, revoke=["nobody"], block=[], recreate=[], report=None)


def test_block_finds_the_allowlists_and_says_what_stays_allowed(tmp_path: Path) -> None:
    config = load_config(_stack(tmp_path))
    plan = plan_containment(
        config, revoke=[], block=["https://exfil.example/x", "exfil.attacker.test", "nowhere.test"],
        recreate=[], report=None,
    )  # fmt: skip
    assert plan.block == {"exfil.example": ["agents/internet-research/allowlist.txt"]}
    assert not plan.restart
    assert any("exfil.attacker.test stays allowed" in n and "attacker.test" in n
               for n in plan.notes)  # fmt: skip
    assert "nowhere.test is on no agent allowlist" in plan.notes
    path = tmp_path / "agents" / "internet-research" / "allowlist.txt"
    assert remove_domain(path, "exfil.example") == ["*.Exfil.Example  # added by mistake"]
    assert path.read_text() == "# hosts\nen.wikipedia.org\nattacker.test\n"
    assert remove_domain(path, "exfil.example") == []


def test_normalise_domain() -> None:
    assert normalise_domain("HTTPS://Exfil.Example:8443/up") == "exfil.example"
    assert normalise_domain("*.exfil.example.") == "exfil.example"


def test_clean_digests_come_from_the_last_committed_release(tmp_path: Path) -> None:
    first = JournalEntry(action="upgrade", services=["worker"], before=_release(
        worker="r/worker@sha256:1", qdrant="r/qdrant@sha256:q1"),
        target={"worker": ServiceImage(service="worker", image_ref="r/worker:1",
                                       digest="r/worker@sha256:2")})  # fmt: skip
    close_entry(tmp_path, first, "committed")
    failed = JournalEntry(action="upgrade", services=["worker"], before=_release(
        worker="r/worker@sha256:2"), target={"worker": ServiceImage(
            service="worker", image_ref="r/worker:1", digest="r/worker@sha256:BAD")})  # fmt: skip
    close_entry(tmp_path, failed, "rolled-back")
    assert clean_digests(tmp_path) == {
        "worker": "r/worker@sha256:2",
        "qdrant": "r/qdrant@sha256:q1",
    }
    config = load_config(_stack(tmp_path))
    plan = plan_containment(config, revoke=[], block=[], recreate=["worker"], report=None)
    assert plan.sentences() == ["recreate worker from r/worker@sha256:2"]
    with pytest.raises(ContainRefused, match="no clean image digest for proxy"):
        plan_containment(config, revoke=[], block=[], recreate=["proxy"], report=None)


def test_an_unknown_fingerprint_is_refused_not_noted(tmp_path: Path) -> None:
    """#23 finding 4: a fingerprint nobody revoked is a mistake (a typo, a forged log line),
    never a silent no-op."""
    config = load_config(_stack(tmp_path))
    unknown = key_fingerprint("never-issued")
    with pytest.raises(
        ContainRefused, match=r"no key named 'sha256:[0-9a-f]{16}'.*never revoked it"
    ):
        plan_containment(config, revoke=[unknown], block=[], recreate=[], report=None)


def _saved_report_flagging(stack: Path, name: str) -> str:
    incident = open_or_current(stack, "blast-radius").id
    now = datetime.now(UTC)
    fp = key_fingerprint(KEYS[name])
    use = KeyUse(
        fingerprint=fp, name=name, requests=1, refused=0, addresses=["198.51.100.66"],
        outside_addresses=["198.51.100.66"], paths=["/v1/models"], paths_total=1,
        first_seen=now, last_seen=now, flagged=True,
    )  # fmt: skip
    save_blast_radius(
        BlastRadiusReport(
            incident_id=incident,
            stack_dir=stack,
            since=now,
            until=None,
            generated_at=now,
            api_keys=[use],
            requests_without_key=0,
            fetched=0,
            off_list=[],
            attempts=[],
            collections=[],
            sources=[],
        )
    )
    return incident


def test_the_saved_report_counts_only_with_from_blast_radius(tmp_path: Path) -> None:
    """#23 finding 4: a block order (or a dry run of one) never revokes the key the saved report
    flagged; --from-blast-radius does, through the same plan."""
    config = load_config(_stack(tmp_path))
    incident = _saved_report_flagging(tmp_path, "ops")
    told = plan_orders(
        config, incident, revoke=[], block=["exfil.example"], recreate=[],
        from_blast_radius=False,
    )  # fmt: skip
    assert told.revoke == [] and told.restart == []
    assert told.block == {"exfil.example": ["agents/internet-research/allowlist.txt"]}
    flagged = plan_orders(
        config, incident, revoke=[], block=[], recreate=[], from_blast_radius=True
    )
    assert [k.name for k in flagged.revoke] == ["ops"]
    with pytest.raises(ContainRefused, match="no saved blast-radius report"):
        plan_orders(config, None, revoke=[], block=[], recreate=[], from_blast_radius=True)
