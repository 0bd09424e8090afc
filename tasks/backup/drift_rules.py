"""The rules of config drift (docs/changelog.md, "Drift"): which parts are configuration, which
files are sensitive enough to alert on, which changes sbx itself explains, and what may be told
of a changed file's content (the names of its keys, never a value).

Pure functions: the backup's drift task (tasks/backup/drift.py) applies them."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from tasks.changelog import ChangeEntry

#: parts that hold configuration: compose files, .env, env/, the proxy's config and keys
#: (part "configs") and the agents' configs and allowlists (part "agent-configs")
CONFIG_PARTS = ("configs", "agent-configs")
#: sbx's own records inside those parts change on every run that writes them
OWN_FILES = (".sbx/*",)
#: a change to one of these raises an alert: who may reach the box, and what the agents may reach
SENSITIVE = ("agents/*allowlist*", "agents/*/*allowlist*", "proxy/*keys*", "proxy/tls/*",
             "proxy/*.pem", "proxy/*.key", "proxy/*.crt")  # fmt: skip
COMPOSE_FILES = ("docker-compose*.yml", "docker-compose*.yaml", "compose*.yml", "compose*.yaml")
#: what each kind of sbx change may edit, beside the path its entry names as its target
EXPLAINS: dict[str, tuple[str, ...]] = {
    "restore": ("*",),  # an in-place restore swaps whole parts in
    "restore-rolled-back": ("*",),
    "upgrade": (*COMPOSE_FILES, ".env"),
    "rollback": (*COMPOSE_FILES, ".env"),
    "config": COMPOSE_FILES,  # sbx logs setup: the logging override file
}
CONTENT_LIMIT = 1 << 20  # larger files are not read for their keys (no config file is)
_KEY = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=")


class KeyChanges(BaseModel):
    """Which keys of a ``KEY=value`` or ``NAME value`` file came, went or changed value; for any
    other text, how many lines came and went. Never a value."""

    model_config = ConfigDict(frozen=True)

    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    lines_added: int = 0
    lines_removed: int = 0


class DriftChange(BaseModel):
    """One configuration file changed by hand (no sbx change explains it): what the change log
    entry, the backup report and the alert say of it. Hashes and key names, never a value."""

    model_config = ConfigDict(frozen=True)

    path: str
    part: str
    code: str = Field(description="As sbx diff prints it: + - M U T.")
    what: list[str] = Field(default_factory=list)
    old_hash: str | None = None
    new_hash: str | None = None
    keys_changed: KeyChanges | None = None
    sensitive: bool = False

    def describe(self) -> str:
        """One line: ``M agents/x/allowlist.txt (content; 1 line added)``."""
        said = list(self.what)
        if self.keys_changed is not None:
            k = self.keys_changed
            said += [f"keys {label}: {', '.join(names)}"
                     for label, names in (("added", k.added), ("removed", k.removed),
                                          ("changed", k.changed)) if names]  # fmt: skip
            said += [f"{n} line(s) {label}"
                     for label, n in (("added", k.lines_added), ("removed", k.lines_removed))
                     if n]  # fmt: skip
        detail = f" ({'; '.join(said)})" if said else ""
        return f"{self.code} {self.path}{detail}".replace("\n", "\\n")


def is_config(part: str, path: str) -> bool:
    """Whether drift is looked for in ``path`` of ``part``."""
    return part in CONFIG_PARTS and not _matches(path, OWN_FILES)


def is_sensitive(path: str) -> bool:
    """An agent allowlist, the proxy's keys or its TLS files."""
    return _matches(path, SENSITIVE)


def explained_by(path: str, changes: Iterable[ChangeEntry], since: datetime) -> ChangeEntry | None:
    """The first sbx change made since ``since`` that may have changed ``path``, or None."""
    for entry in changes:
        try:
            if datetime.fromisoformat(entry.time) < since:
                continue
        except ValueError:  # an edited entry: `sbx changelog verify` names it, it explains nothing
            continue
        targets = [t.strip() for t in entry.target.split(",")]
        if path in targets or _matches(path, EXPLAINS.get(entry.action, ())):
            return entry
        # a model swap edits the file of variables its service's arguments come from (named in
        # the entry; env/<service>.env before) and keeps the old file beside it
        if entry.action.startswith("model-swap"):
            edited = entry.before.get("env_file") if isinstance(entry.before, dict) else None
            files = [str(edited)] if edited else [f"env/{service}.env" for service in targets]
            if any(path.startswith(name) for name in files):
                return entry
    return None


def key_changes(old: bytes | None, new: bytes | None) -> KeyChanges | None:
    """What changed inside a text file, by key name or line count; None when either side is
    not text (or not there)."""
    if old is None or new is None:
        return None
    try:
        before, after = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return None
    old_keys, new_keys = _keys(before), _keys(after)
    if old_keys is None or new_keys is None:
        old_lines, new_lines = _lines(before), _lines(after)
        return KeyChanges(
            lines_added=sum(1 for line in new_lines if line not in old_lines),
            lines_removed=sum(1 for line in old_lines if line not in new_lines),
        )
    return KeyChanges(
        added=sorted(new_keys.keys() - old_keys.keys()),
        removed=sorted(old_keys.keys() - new_keys.keys()),
        changed=sorted(k for k in old_keys.keys() & new_keys.keys() if old_keys[k] != new_keys[k]),
    )


def _keys(text: str) -> dict[str, str] | None:
    """``KEY=value`` (env files) or ``NAME value`` (the proxy's keys file) lines as a dict;
    None when some line is neither: the file is not a key file."""
    found: dict[str, str] = {}
    lines = _lines(text)
    for line in lines:
        if match := _KEY.match(line):
            found[match.group(1)] = line[match.end() :].strip()
        elif len(parts := line.split(None, 1)) == 2:
            found[parts[0]] = parts[1].strip()
        else:
            return None
    return found if lines else None


def _lines(text: str) -> list[str]:
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def _matches(path: str, patterns: Iterable[str]) -> bool:
    name = PurePosixPath(path)
    return any(fnmatch.fnmatchcase(path, p) or name.match(p) for p in patterns)
