"""sbx's own collection snapshots on a Qdrant server: asked for, waited for, deleted.

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
from typing import TYPE_CHECKING, Protocol

from sbx.errors import QdrantError

if TYPE_CHECKING:  # qdrant-client costs ~1.5 s to import; this module is imported at start-up
    from qdrant_client.http.models import SnapshotDescription

#: the ledger's place in a stack (sbx's state; left out of backups with the rest of .sbx)
STACK_LEDGER = Path(".sbx") / "qdrant-snapshots.json"
#: a snapshot begins this soon after it is asked for (Qdrant spawns the task at once); the
#: margin before the request covers a second's rounding in its name and a little clock skew
WINDOW_S = (-5.0, 30.0)
#: an earlier request not seen finished is waited for (adopted) this long past its own wait
ADOPT_S = 10.0
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


class Server(Protocol):
    """What :class:`OwnSnapshots` needs of the Qdrant client (tasks.clients.qdrant.Qdrant)."""

    url: str

    def snapshots(self, collection: str) -> list[SnapshotDescription]: ...
    def create_snapshot(self, collection: str) -> SnapshotDescription | None: ...
    def delete_snapshot(self, collection: str, name: str) -> bool: ...


class OwnSnapshots:
    """sbx's collection snapshots on one server: asked for, waited for, deleted."""

    def __init__(self, server: Server, book: SnapshotLedger) -> None:
        self.server, self.book = server, book

    def request(
        self, collection: str, timeout_s: float
    ) -> tuple[Request, SnapshotDescription | None]:
        """Clear sbx's earlier snapshots of ``collection``; adopt one still being made, or ask
        for a new one (written down before it is asked for). The description comes back when
        the server made it at once (one that ignores ``wait=false``)."""
        names = [s.name for s in self.server.snapshots(collection)]
        adopt = None
        for earlier in self.book.requests(self.server.url, collection):
            found = [earlier.name] if earlier.name else earlier.candidates(names)
            if len(found) == 1:
                self.delete(earlier, found[0])
            elif found:  # two new ones in its window: an operator's is among them
                self.book.drop(earlier)
            elif time.time() < earlier.requested_at + earlier.timeout_s + ADOPT_S:
                adopt = earlier  # still being made: wait for it, do not make a second
        if adopt is not None:
            return adopt, None
        request = Request(
            url=self.server.url, collection=collection, requested_at=time.time(), before=names,
            timeout_s=timeout_s,
        )  # fmt: skip
        self.book.add(request)
        description = self.server.create_snapshot(collection)
        if description is not None:
            request.name = description.name
            self.book.update(request)
        return request, description

    def wait_for(self, request: Request, deadline: float) -> SnapshotDescription:
        """Poll the collection's snapshot list until the requested snapshot appears."""
        pause, timeout_s = 0.1, deadline - time.time()
        while True:
            listing = {s.name: s for s in self.server.snapshots(request.collection)}
            mine = self.book.requests(self.server.url, request.collection)
            found = request.candidates(list(listing), {r.name for r in mine if r.name})
            if found:
                request.name = found[0]
                self.book.update(request)
                return listing[found[0]]
            if time.time() >= deadline:
                raise QdrantError(
                    f"Qdrant at {self.server.url} did not finish a snapshot of "
                    f"'{request.collection}' within {timeout_s:.1f} s. sbx waits for it (and "
                    "deletes it) on the next snapshot of that collection; check the qdrant "
                    "container's logs, CPU and disk, or back up while the collection is quieter."
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def delete(self, request: Request, name: str | None = None) -> None:
        """Delete sbx's snapshot on the server (gone already is fine), then forget it; when
        the delete fails the ledger keeps it for the next time."""
        name = name or request.name
        if name is not None:
            self.server.delete_snapshot(request.collection, name)
        self.book.drop(request)
