"""Blast radius of an incident: what each source says was touched since a time.

One scan per source, each a pure function over files (or lines) returning its part of the
report: the proxy's access logs (which keys were used, from where, for what), the agents' fetch
logs (URLs fetched off their allowlists; refusals listed apart as attempts) and Qdrant's request
lines (collections read or written). ``flows/incident/radius.py`` runs them as tasks and
adds Qdrant's live collections and counts.

Keys appear only as fingerprints (``tasks/incident/keys.py``) and paths without query strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, computed_field

from tasks.incident.logs import (
    agent_of,
    host_allowed,
    in_window,
    log_files,
    parse_access_line,
    parse_fetch_line,
    read_allowlist,
    read_lines,
)
from tasks.incident.qdrant_log import parse_qdrant_line
from tasks.incident.redact import Redactor

SCHEMA_VERSION = 1
MAX_PATHS = 50  # distinct paths listed per key (the count says how many there were)


class SourceScan(BaseModel):
    """How much of one source was read: a finding is only as good as its coverage."""

    model_config = ConfigDict(frozen=True)

    source: str  # proxy-access, agent-fetch, qdrant-log, qdrant-api
    files: list[str] = Field(default_factory=list)
    lines: int = 0
    in_window: int = 0
    before_since: int = 0
    unparsed: int = 0
    error: str | None = None  # the source could not be read at all (said, never fatal)


class KeyUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    fingerprint: str
    name: str | None = Field(description="From the keys file, when the key is still there.")
    requests: int
    refused: int = Field(description="Requests answered 401/403.")
    addresses: list[str]
    outside_addresses: list[str] = Field(description="Addresses outside known_networks.")
    paths: list[str]
    paths_total: int
    first_seen: datetime
    last_seen: datetime
    flagged: bool


class FetchFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: datetime
    agent: str
    url: str
    host: str
    status: int | None


class CollectionUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    points: int | None = None  # from the API, when it answered
    reads: int = 0
    writes: int = 0
    last_seen: datetime | None = None


class ProxyScan(BaseModel):
    model_config = ConfigDict(frozen=True)

    api_keys: list[KeyUse]
    without_key: int
    scan: SourceScan


class AgentScan(BaseModel):
    model_config = ConfigDict(frozen=True)

    fetched: int  # fetches in the window (on and off the allowlist)
    off_list: list[FetchFinding]
    attempts: list[FetchFinding]
    scan: SourceScan


class QdrantScan(BaseModel):
    model_config = ConfigDict(frozen=True)

    collections: list[CollectionUse]
    scans: list[SourceScan]


class FlaggedKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None
    fingerprint: str


class BlastRadiusReport(BaseModel):
    """``sbx incident blast-radius``: saved as ``.sbx/incidents/<id>/blast-radius.json``."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    incident_id: str
    stack_dir: Path
    since: datetime
    until: datetime | None
    generated_at: datetime
    api_keys: list[KeyUse]
    requests_without_key: int
    fetched: int
    off_list: list[FetchFinding]
    attempts: list[FetchFinding]
    collections: list[CollectionUse]
    sources: list[SourceScan]

    # computed fields are written into blast-radius.json: 'sbx incident report' and contain's
    # --from-blast-radius read them there (docs/incident.md)
    @computed_field  # type: ignore[prop-decorator]
    @property
    def flagged_keys(self) -> list[FlaggedKey]:
        return [FlaggedKey(name=k.name, fingerprint=k.fingerprint) for k in self.api_keys
                if k.flagged]  # fmt: skip

    @computed_field  # type: ignore[prop-decorator]
    @property
    def off_list_urls(self) -> list[str]:
        return list(dict.fromkeys(f.url for f in self.off_list))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flagged_domains(self) -> list[str]:
        return sorted({f.host for f in self.off_list if f.host})


def _networks(known: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in known]


def is_known(addr: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """An address inside a known network; anything unparsable counts as outside."""
    try:
        ip = ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


class _KeyTally:
    def __init__(self, at: datetime) -> None:
        self.requests = self.refused = 0
        self.addresses: set[str] = set()
        self.paths: set[str] = set()
        self.first = self.last = at


def scan_proxy(
    stack_dir: Path,
    patterns: list[str],
    since: datetime,
    until: datetime | None,
    known_networks: list[str],
    names: dict[str, str],
    rule: Redactor | None = None,
) -> ProxyScan:
    """Per key fingerprint: requests, addresses, paths, first/last seen, flagged when used from
    outside ``known_networks``. ``names``: fingerprint -> NAME of the keys file now; ``rule``
    redacts the key values sbx knows wherever a client wrote one (a path, an address)."""
    rule = rule or Redactor()
    files = log_files(stack_dir, patterns)
    tallies: dict[str, _KeyTally] = {}
    lines = hits = early = bad = anonymous = 0
    for path in files:
        for raw in read_lines(path):
            if not raw.strip():
                continue
            lines += 1
            line = parse_access_line(raw)
            if line is None:
                bad += 1
                continue
            if not in_window(line.time, since, until):
                early += line.time < since
                continue
            hits += 1
            if line.key_fp is None:
                anonymous += 1
                continue
            tally = tallies.setdefault(line.key_fp, _KeyTally(line.time))
            tally.requests += 1
            tally.refused += line.status in (401, 403)
            tally.addresses.add(rule.text(line.addr))
            tally.paths.add(rule.text(line.path))
            tally.first, tally.last = min(tally.first, line.time), max(tally.last, line.time)
    networks = _networks(known_networks)
    keys = []
    for fp, t in sorted(tallies.items(), key=lambda item: (-item[1].requests, item[0])):
        outside = sorted(a for a in t.addresses if not is_known(a, networks))
        keys.append(
            KeyUse(
                fingerprint=fp, name=names.get(fp), requests=t.requests, refused=t.refused,
                addresses=sorted(t.addresses), outside_addresses=outside,
                paths=sorted(t.paths)[:MAX_PATHS], paths_total=len(t.paths),
                first_seen=t.first, last_seen=t.last, flagged=bool(outside),
            )
        )  # fmt: skip
    scan = SourceScan(
        source="proxy-access", files=[_rel(stack_dir, p) for p in files], lines=lines,
        in_window=hits, before_since=early, unparsed=bad,
    )  # fmt: skip
    return ProxyScan(api_keys=keys, without_key=anonymous, scan=scan)


def allowlists(stack_dir: Path, patterns: list[str]) -> dict[str, list[str]]:
    """agent -> its allowlist's domains (``agents/<agent>/allowlist.txt``)."""
    found = {p for pattern in patterns for p in stack_dir.glob(pattern) if p.is_file()}
    return {p.parent.name: read_allowlist(p) for p in sorted(found)}


def scan_agents(
    stack_dir: Path,
    patterns: list[str],
    since: datetime,
    until: datetime | None,
    lists: dict[str, list[str]],
    rule: Redactor | None = None,
) -> AgentScan:
    """Fetches whose host is not on that agent's allowlist (as the allowlist reads now; an agent
    without one has every fetch off-list). Refusals (not allowed, not fetched) are attempts.
    ``rule`` redacts the key values sbx knows in the URLs (a key sent out is still a secret)."""
    rule = rule or Redactor()
    files = log_files(stack_dir, patterns)
    off_list, attempts = [], []
    lines = hits = early = bad = fetched = 0
    for path in files:
        for raw in read_lines(path):
            if not raw.strip():
                continue
            lines += 1
            record = parse_fetch_line(raw, agent_of(path))
            if record is None:
                bad += 1
                continue
            if not in_window(record.time, since, until):
                early += record.time < since
                continue
            hits += 1
            finding = FetchFinding(
                time=record.time, agent=record.agent, url=rule.text(record.url), host=record.host,
                status=record.status,
            )  # fmt: skip
            if not record.fetched:
                if not record.allowed:
                    attempts.append(finding)
                continue
            fetched += 1
            if not host_allowed(record.host, lists.get(record.agent, [])):
                off_list.append(finding)
    scan = SourceScan(
        source="agent-fetch", files=[_rel(stack_dir, p) for p in files], lines=lines,
        in_window=hits, before_since=early, unparsed=bad,
    )  # fmt: skip
    return AgentScan(fetched=fetched, off_list=off_list, attempts=attempts, scan=scan)


def scan_qdrant_lines(
    lines: Iterable[str], since: datetime, until: datetime | None
) -> tuple[dict[str, CollectionUse], SourceScan]:
    """Collections read or written according to the qdrant container's request lines."""
    uses: dict[str, CollectionUse] = {}
    count = hits = early = bad = 0
    for raw in lines:
        if not raw.strip():
            continue
        count += 1
        request = parse_qdrant_line(raw)
        if request is None:
            bad += 1  # start-up banners and the like: counted, not findings
            continue
        if not in_window(request.time, since, until):
            early += request.time < since
            continue
        hits += 1
        name = request.collection
        if name is None:
            continue
        use = uses.get(name) or CollectionUse(name=name)
        writes = request.writes
        uses[name] = use.model_copy(
            update={
                "reads": use.reads + (not writes),
                "writes": use.writes + writes,
                "last_seen": request.time,
            }
        )
    scan = SourceScan(
        source="qdrant-log", lines=count, in_window=hits, before_since=early, unparsed=bad
    )
    return uses, scan


def scan_qdrant_log(
    text: str, since: datetime, until: datetime | None
) -> tuple[dict[str, CollectionUse], SourceScan]:
    """``scan_qdrant_lines`` over a whole log. Lines end at "\\n" only: ``str.splitlines``
    also ends one at U+2028 and U+2029, which a client can put in a header Qdrant logs (raw
    UTF-8), and the text after it would be read as a line of its own."""
    return scan_qdrant_lines(text.split("\n"), since, until)


def _rel(stack_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(stack_dir).as_posix()
    except ValueError:
        return str(path)
