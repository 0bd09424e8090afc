"""Which collection snapshots on a Qdrant server are sbx's own, so that only those are deleted.

Qdrant names a collection snapshot itself (``<collection>-<peer id>-<UTC time it began>.snapshot``,
lib/collection/src/collection/snapshots.rs) and takes no name or tag from the caller, so sbx
cannot mark its snapshots. It writes down each request instead, before it sends it: the server,
the collection, the time, and the snapshots that were there already. Once the new snapshot shows
up its name is written too, and the entry is dropped once that name is deleted on the server.

An entry whose snapshot never showed up while sbx waited (a collection too large for the wait,
a run killed meanwhile) is resolved on the next snapshot of that collection: a snapshot that
was not there before and whose name says it began within ``WINDOW_S`` of the request is sbx's
and is deleted, when it is the only such one (two such means an operator made one at the same
moment: both are left, never guessed). Until then a young entry is *adopted* (waited for) rather
than a second snapshot made beside it.

The ledger is a JSON file (``<stack>/.sbx/qdrant-snapshots.json``) when a path is given, so a
killed run's request is still known to the next; otherwise it lives in this process (enough for
Prefect's retries, which run in the same process).
"""

from __future__ import annotations

import calendar
import json
import os
import re
import tempfile
import time
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: a snapshot begins this soon after it is asked for (Qdrant spawns the task at once); the
#: margin before the request covers a second's rounding in its name and a little clock skew
WINDOW_S = (-5.0, 30.0)
#: an entry whose snapshot never appeared is forgotten after this long (creation failed)
FORGET_S = 86_400.0
_STAMP = re.compile(r"-(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)(?:-\d+)?\.snapshot$")
_MEMORY: list[Request] = []


@dataclass
class Request:
    url: str
    collection: str
    requested_at: float
    before: list[str] = field(default_factory=list)
    #: the snapshot's name once known; until then it is found by ``candidates``
    name: str | None = None
    #: how long sbx meant to wait for it
    timeout_s: float = 60.0

    def began_at(self, name: str) -> float | None:
        """When a snapshot of this collection began, read from its name; None: not one."""
        match = _STAMP.search(name)
        if not name.startswith(f"{self.collection}-") or match is None:
            return None
        return float(calendar.timegm(tuple(int(g) for g in match.groups())))

    def candidates(self, names: list[str], taken: AbstractSet[str] = frozenset()) -> list[str]:
        """Snapshots that may be this request's: new, and begun within the window."""
        low, high = self.requested_at + WINDOW_S[0], self.requested_at + WINDOW_S[1]
        found = []
        for name in names:
            began = self.began_at(name)
            fresh = name not in self.before and name not in taken
            if fresh and began is not None and low <= began <= high:
                found.append(name)
        return sorted(found, key=lambda n: abs((self.began_at(n) or 0) - self.requested_at))


class SnapshotLedger:
    """sbx's requests for collection snapshots, per server and collection."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def requests(self, url: str, collection: str) -> list[Request]:
        return [r for r in self._load() if r.url == url and r.collection == collection]

    def add(self, request: Request) -> None:
        self._save([*self._load(), request])

    def update(self, request: Request) -> None:
        """Write down ``request``'s name (same server, collection and time)."""
        self._save([request if _same(r, request) else r for r in self._load()])

    def drop(self, request: Request) -> None:
        self._save([r for r in self._load() if not _same(r, request)])

    def _load(self) -> list[Request]:
        if self.path is None:
            return list(_MEMORY)
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [Request(**entry) for entry in raw]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError):
            # a damaged ledger forgets sbx's requests: nothing is deleted on its word
            return []

    def _save(self, requests: list[Request]) -> None:
        now = time.time()
        kept = [r for r in requests if r.name or now - r.requested_at < FORGET_S]
        if self.path is None:
            _MEMORY[:] = kept
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump([asdict(r) for r in kept], out)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _same(a: Request, b: Request) -> bool:
    return (a.url, a.collection, a.requested_at) == (b.url, b.collection, b.requested_at)
