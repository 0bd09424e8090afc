"""Containment of an incident: what to revoke, block and recreate (the plan), then doing it.

Decide and act are apart: :func:`plan_containment` only reads (keys file, allowlists, upgrade
journal, the saved blast-radius report) and refuses, changing nothing, when an order names a key
that is not in the keys file or a service the journal has no clean digest for. The plan's
sentences are what a dry run prints and what the real run reports as done, word for word.

Clean digests come from the upgrade journal (``tasks/upgrade/journal.py``): per service, the image
the last committed upgrade or rollback left running, else what that entry recorded as running. The
recreate goes through the upgrade's own pin override (``tasks.upgrade.release.switch_images``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from blocks.config import SbxConfig
from sbx.errors import ContainRefused
from tasks.changelog import read_changes
from tasks.incident.keys import KeyEntry, is_fingerprint, match_keys, read_keys, write_atomic
from tasks.incident.logs import read_allowlist
from tasks.incident.radius import BlastRadiusReport
from tasks.incident.sources import load_blast_radius
from tasks.upgrade.journal import history


class KeyRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    fingerprint: str


class ContainPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    keys_file: str
    revoke: list[KeyRef] = Field(default_factory=list)
    restart: list[str] = Field(default_factory=list)  # key readers, when keys are revoked
    block: dict[str, list[str]] = Field(default_factory=dict)  # domain -> allowlists listing it
    recreate: dict[str, str] = Field(default_factory=dict)  # service -> repo@sha256:…
    notes: list[str] = Field(default_factory=list)  # orders with nothing to do, and why

    @property
    def empty(self) -> bool:
        return not (self.revoke or self.block or self.recreate)

    def sentences(self) -> list[str]:
        """One line per change in the order they are made, the same words in a dry run and in
        the report."""
        lines = [
            f"remove {domain} from {path}" for domain, paths in self.block.items() for path in paths
        ]
        lines += [f"revoke key {k.name} ({k.fingerprint}) in {self.keys_file}" for k in self.revoke]
        lines += [f"restart {s} so it reads {self.keys_file} again" for s in self.restart]
        lines += [f"recreate {s} from {d}" for s, d in sorted(self.recreate.items())]
        return lines


def normalise_domain(text: str) -> str:
    """``https://Exfil.Example/x`` / ``*.exfil.example`` / ``exfil.example.`` -> the domain."""
    host = text.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split(":", 1)[0]
    return host.removeprefix("*.").rstrip(".")


def _entry_domain(line: str) -> str:
    return line.split("#", 1)[0].strip().lower().rstrip(".").removeprefix("*.")


def clean_digests(stack_dir: Path) -> dict[str, str]:
    """service -> ``repo@sha256:…`` of the last committed release that recorded it."""
    found: dict[str, str] = {}
    for entry in reversed(history(stack_dir)):
        if entry.state != "committed":
            continue
        release = {s: img.digest for s, img in entry.before.images.items()}
        release.update({s: img.digest for s, img in entry.target.items()})
        for service, digest in release.items():
            found.setdefault(service, digest)
    return found


def revoked_fingerprints(stack_dir: Path) -> set[str]:
    """Fingerprints the change log records as revoked by an earlier contain."""
    found = set()
    for entry in read_changes(stack_dir):
        before = entry.before if entry.action == "incident-revoke-key" else None
        key = before.get("key") if isinstance(before, dict) else None
        if isinstance(key, dict) and isinstance(key.get("fingerprint"), str):
            found.add(key["fingerprint"])
    return found


def _keys_to_revoke(
    entries: list[KeyEntry], orders: list[str], flagged: list[str], notes: list[str],
    revoked: set[str],
) -> list[KeyRef]:  # fmt: skip
    chosen: dict[str, KeyRef] = {}
    for wanted in orders:
        matched = match_keys(entries, wanted)
        if not matched and not (is_fingerprint(wanted) and wanted.strip() in revoked):
            names = ", ".join(e.name for e in entries) or "none"
            raise ContainRefused(
                f"no key named {wanted!r} in the keys file (it has: {names}) and sbx never "
                "revoked it. Give a NAME or a fingerprint from 'sbx incident blast-radius'."
            )
        if not matched:
            notes.append(f"key {wanted} is not in the keys file (already revoked)")
        for e in matched:
            chosen[e.fingerprint] = KeyRef(name=e.name, fingerprint=e.fingerprint)
    for fp in flagged:
        matched = match_keys(entries, fp)
        if not matched:
            notes.append(f"flagged key {fp} is not in the keys file (already revoked)")
        for e in matched:
            chosen[e.fingerprint] = KeyRef(name=e.name, fingerprint=e.fingerprint)
    return list(chosen.values())


def allowlist_paths(config: SbxConfig) -> list[Path]:
    stack = config.stack_dir
    found = {p for g in config.incident.agent_allowlists for p in stack.glob(g) if p.is_file()}
    return sorted(found)


def plan_containment(
    config: SbxConfig,
    *,
    revoke: list[str],
    block: list[str],
    recreate: list[str],
    report: BlastRadiusReport | None,
) -> ContainPlan:
    """What contain would change; raises ContainRefused (nothing changed) on a bad order."""
    stack, inc = config.stack_dir, config.incident
    notes: list[str] = []
    flagged = [k.fingerprint for k in report.flagged_keys] if report else []
    keys = _keys_to_revoke(
        read_keys(stack / inc.keys_file), revoke, flagged, notes,
        revoked_fingerprints(stack) if revoke else set(),
    )  # fmt: skip
    domains = dict.fromkeys(normalise_domain(d) for d in [*block, *(
        report.flagged_domains if report else [])])  # fmt: skip
    lists = {p: read_allowlist(p) for p in allowlist_paths(config)}
    blocking: dict[str, list[str]] = {}
    for domain in domains:
        holding = [
            p.relative_to(stack).as_posix()
            for p, entries in lists.items()
            if domain in {e.removeprefix("*.") for e in entries}
        ]
        if holding:
            blocking[domain] = holding
        else:
            notes.append(f"{domain} is on no agent allowlist")
        for p, entries in lists.items():
            parents = [e for e in entries if domain.endswith("." + e.removeprefix("*."))]
            if parents:
                notes.append(
                    f"{domain} stays allowed in {p.relative_to(stack).as_posix()} through "
                    f"{', '.join(parents)}: block that entry too if it must go"
                )
    digests = clean_digests(stack)
    missing = [s for s in recreate if s not in digests]
    if missing:
        raise ContainRefused(
            f"the upgrade journal records no clean image digest for {', '.join(missing)} "
            f"(it has: {', '.join(sorted(digests)) or 'none'}). Recreate it by hand from a "
            "known image ('docker compose up -d --force-recreate SERVICE'), or run 'sbx upgrade' "
            "once so the journal records its release."
        )
    return ContainPlan(
        keys_file=inc.keys_file,
        revoke=keys,
        restart=list(inc.key_readers) if keys else [],
        block=blocking,
        recreate={s: digests[s] for s in dict.fromkeys(recreate)},
        notes=notes,
    )


def plan_orders(
    config: SbxConfig,
    incident_id: str | None,
    *,
    revoke: list[str],
    block: list[str],
    recreate: list[str],
    from_blast_radius: bool,
) -> ContainPlan:
    """The one plan a dry run shows, the confirmation asks about and the real run carries out:
    the saved blast-radius report is read only with ``--from-blast-radius``, never otherwise."""
    report = None
    if from_blast_radius:
        report = load_blast_radius(config.stack_dir, incident_id) if incident_id else None
        if report is None:
            raise ContainRefused(
                f"incident {incident_id or '(none open)'} has no saved blast-radius report. Run "
                "'sbx incident blast-radius --since TIME' first, or name keys and domains "
                "yourself."
            )
    return plan_containment(config, revoke=revoke, block=block, recreate=recreate, report=report)


def remove_domain(path: Path, domain: str) -> list[str]:
    """Drop the allowlist lines that name ``domain`` (or ``*.domain``); comments and order stay.
    Returns the lines removed (nothing is written when there are none)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _entry_domain(line) != domain]
    removed = [line.strip() for line in lines if _entry_domain(line) == domain]
    if removed:
        write_atomic(path, "".join(kept))
    return removed
