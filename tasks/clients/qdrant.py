"""Qdrant client: collections, point counts, and snapshots through the real qdrant-client.

Snapshots are the no-downtime way to capture Qdrant (design.md): create one per collection
(asynchronously, waited for as long as the collection needs), stream its bytes to a local file
(qdrant-client has no download helper, so the bytes come over httpx with the same timeout),
delete it on the server, and recover later by uploading it with its sha256. Qdrant keeps every
snapshot until it is deleted, uploads included, in the live box's data/qdrant/snapshots: sbx
deletes each one it made or uploaded, on failure too (qdrant_ledger says which are sbx's). SDK
and transport errors become :class:`QdrantError`: retryable for 5xx and connection failures.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from qdrant_client.http.models import SnapshotDescription

from sbx.errors import QdrantError
from sbx.hashing import sha256_file
from tasks.clients.deadline import paced_stream
from tasks.clients.qdrant_ledger import OwnSnapshots, SnapshotLedger

# a snapshot download moving less than this in a stall window is given up: Qdrant streams the
# file from its disk over the host's own network, so a healthy download moves this in well
# under a second, and the rule never rushes a large snapshot, only a stalled one
MIN_PROGRESS = 1 << 20
#: the file name sbx uploads a snapshot under (Qdrant keeps uploads): recognisably sbx's own
UPLOAD_PREFIX = "sbx-upload-"


_UNAUTHORIZED_STEP = (
    "Qdrant wants its API key: sbx reads QDRANT__SERVICE__API_KEY from the compose file; set it "
    "there or in the sbx-secrets block's api_keys (docs/real-box.md)."
)


class SnapshotFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    collection: str
    name: str
    path: Path
    size: int
    sha256: str
    points: int


class Qdrant:
    """A Qdrant server reached over REST. Build with :func:`connect`."""

    def __init__(
        self, url: str, *, timeout_s: float = 60.0, api_key: SecretStr | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # the key goes as Qdrant's `api-key` header on every call, the raw snapshot download
        # included; given to qdrant-client as a header, not `api_key=`, which warns on every
        # plain-http connection (a box's Qdrant listens on loopback without TLS)
        headers = {"api-key": api_key.get_secret_value()} if api_key else {}
        # check_compatibility would warn on every version skew; the version is recorded instead.
        # qdrant-client takes whole seconds, and 0 makes its sockets non-blocking (every call
        # then fails "Operation now in progress"): round up, never below 1
        self._client = QdrantClient(
            url=self.url, prefer_grpc=False, timeout=max(1, math.ceil(timeout_s)),
            check_compatibility=False, headers=headers,
        )  # fmt: skip
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s), trust_env=False, headers=headers
        )

    def version(self) -> str:
        with self._translate("read the server version"):
            return str(self._client.info().version)

    def collections(self) -> list[str]:
        with self._translate("list collections"):
            return sorted(c.name for c in self._client.get_collections().collections)

    def point_count(self, collection: str) -> int:
        with self._translate(f"count points of collection '{collection}'"):
            return int(self._client.count(collection, exact=True).count)

    def snapshot_to_file(
        self,
        collection: str,
        dest_dir: Path,
        *,
        stall_s: float | None = None,
        create_timeout_s: float | None = None,
        ledger: Path | None = None,
    ) -> SnapshotFile:
        """Snapshot a collection, download it into ``dest_dir``, delete it on the server.

        The snapshot is made asynchronously (``wait=false``: Qdrant answers 202 at once) and
        waited for in the collection's snapshot list, up to ``create_timeout_s`` (the client's
        timeout plus a second per 1,000 points unless given), so a large collection is never
        cut off by the client's request timeout and asked for twice. sbx's own earlier
        snapshots of the collection are deleted first, or waited for when still being made
        (see qdrant_ledger; ``ledger`` is the file that remembers them between runs).

        The download must move at least ``MIN_PROGRESS`` bytes every ``stall_s`` (the client's
        timeout unless given), headers included: a snapshot of any size gets the time it needs
        at a healthy pace, and a server that trickles is dropped within about two windows. A
        failed download leaves no file behind, here or on the server: the snapshot is deleted
        there whatever happens (SIGTERM included)."""
        with self._translate(f"snapshot collection '{collection}'"):
            points = int(self._client.count(collection, exact=True).count)
        timeout_s = create_timeout_s or self.timeout_s + points / 1000
        own = OwnSnapshots(self, SnapshotLedger(ledger))
        deadline = time.time() + timeout_s
        request, description = own.request(collection, timeout_s)
        try:
            if description is None:
                description = own.wait_for(request, deadline)
            snap = self._fetch(collection, description, dest_dir, stall_s, points)
        except BaseException:
            if request.name is not None:  # unnamed: still being made, the ledger keeps it
                with contextlib.suppress(QdrantError):  # kept in the ledger if this fails
                    own.delete(request)
            raise
        own.delete(request)
        return snap

    def create_snapshot(self, collection: str) -> SnapshotDescription | None:
        """Ask for a snapshot without waiting (``wait=false``): None when Qdrant accepted it
        (202) and makes it behind the answer; its description when it made it at once."""
        with self._translate(f"snapshot collection '{collection}'"):
            return self._client.create_snapshot(collection, wait=False)

    def _fetch(
        self,
        collection: str,
        description: SnapshotDescription,
        dest_dir: Path,
        stall_s: float | None,
        points: int,
    ) -> SnapshotFile:
        dest = dest_dir / f"{collection}.snapshot"
        digest = hashlib.sha256()
        url = f"{self.url}/collections/{collection}/snapshots/{description.name}"
        window_s = stall_s or self.timeout_s
        try:
            what = f"snapshot {description.name} of '{collection}' from {self.url}"
            self._download(url, what, dest, window_s, description.size, digest)
            if description.checksum and digest.hexdigest() != description.checksum:
                raise QdrantError(
                    f"Snapshot {description.name} of '{collection}' arrived damaged (sha256 "
                    f"{digest.hexdigest()[:16]}…, Qdrant said {description.checksum[:16]}…). "
                    "Retry.",
                    retryable=True,
                )
        except httpx.TimeoutException as exc:  # AnswerDeadline, or a read that got nothing
            dest.unlink(missing_ok=True)
            raise QdrantError(
                f"Downloading snapshot {description.name} of '{collection}' from {self.url} "
                f"stalled ({exc}); the partial file is removed. Check the qdrant "
                "container (docker logs, CPU, disk) and the network to it, then back up again; "
                "raise qdrant_snapshot_stall_s if it is only slow."
            ) from exc
        except (httpx.HTTPError, OSError) as exc:
            dest.unlink(missing_ok=True)
            raise QdrantError(
                f"Downloading snapshot {description.name} of '{collection}' from {self.url} "
                f"failed ({exc}). Retry; check free disk space in {dest_dir}.",
                retryable=True,
            ) from exc
        except BaseException:  # damaged, oversized, interrupted: no partial snapshot either
            dest.unlink(missing_ok=True)
            raise
        return SnapshotFile(
            collection=collection,
            name=description.name,
            path=dest,
            size=dest.stat().st_size,
            sha256=digest.hexdigest(),
            points=points,
        )

    def snapshots(self, collection: str) -> list[SnapshotDescription]:
        """The collection's snapshots on the server (none when the collection is missing)."""
        try:
            with self._translate(f"list snapshots of '{collection}'"):
                return list(self._client.list_snapshots(collection))
        except QdrantError as exc:
            if isinstance(exc.__cause__, UnexpectedResponse) and exc.__cause__.status_code == 404:
                return []
            raise

    def delete_snapshot(self, collection: str, name: str) -> bool:
        """Delete one snapshot of ``collection``; False when it was not there."""
        try:
            with self._translate(f"delete snapshot {name} of '{collection}'"):
                return bool(self._client.delete_snapshot(collection, name, wait=True))
        except QdrantError as exc:
            if isinstance(exc.__cause__, UnexpectedResponse) and exc.__cause__.status_code == 404:
                return False
            raise

    def _download(
        self, url: str, what: str, dest: Path, window_s: float, announced: int | None, digest: Any
    ) -> None:
        """Stream ``url`` into ``dest`` at a pace (``paced_stream``), no more than ``announced``
        bytes (the snapshot's size as Qdrant described it, when it did)."""
        with (
            paced_stream(self._http, "GET", url, window_s=window_s, min_bytes=MIN_PROGRESS)
            as (response, chunks),
            dest.open("wb") as out,
        ):  # fmt: skip
            response.raise_for_status()
            size = 0
            for block in chunks:
                size += len(block)
                if announced and size > announced:
                    raise QdrantError(
                        f"Downloading {what} brought more than the {announced} bytes Qdrant "
                        "announced for it; the file is removed. Retry; check the qdrant "
                        "container's logs.",
                        retryable=True,
                    )
                digest.update(block)
                out.write(block)

    def recover_from_file(self, collection: str, path: Path, *, sha256: str | None = None) -> int:
        """Replace ``collection`` with the snapshot in ``path`` (upload); returns its points.

        Qdrant checks the upload against ``sha256`` (the hash sbx recorded for the file; read
        from the file when not given) before it touches the collection. Qdrant keeps every
        uploaded file in the collection's snapshot folder under the upload's file name
        (snapshot_api.rs ``do_save_uploaded_snapshot``; recovery from a local file never
        removes it), so sbx uploads under a name of its own and deletes it afterwards,
        whatever happened, with any that a killed run left."""
        sha256 = sha256 or sha256_file(path)
        for leftover in self.snapshots(collection):
            if leftover.name.startswith(UPLOAD_PREFIX):
                self.delete_snapshot(collection, leftover.name)
        upload = f"{UPLOAD_PREFIX}{secrets.token_hex(8)}.snapshot"
        try:
            with (
                self._translate(f"recover collection '{collection}' from {path.name}"),
                path.open("rb") as handle,
            ):
                self._client.http.snapshots_api.recover_from_uploaded_snapshot(
                    collection_name=collection,
                    # (file name, file): the name Qdrant files the upload under
                    snapshot=(upload, handle),  # type: ignore[arg-type]
                    wait=True,
                    checksum=sha256,
                )
        except BaseException as exc:
            with contextlib.suppress(QdrantError):  # the next recover deletes it then
                self.delete_snapshot(collection, upload)
            if "checksum mismatch" in str(exc).lower():
                raise QdrantError(
                    f"Qdrant at {self.url} refused {path} for '{collection}': its sha256 is "
                    f"not {sha256[:16]}…, the one recorded for it, so the file changed since. "
                    "The collection is untouched. Run 'sbx verify' and restore again."
                ) from exc
            raise
        self.delete_snapshot(collection, upload)
        return self.point_count(collection)

    def close(self) -> None:
        self._client.close()
        self._http.close()

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except UnexpectedResponse as exc:
            server_side = (exc.status_code or 0) >= 500
            raise QdrantError(
                f"Qdrant at {self.url} could not {action}: HTTP {exc.status_code} "
                f"{exc.content.decode(errors='replace')[:200]}. "
                + (
                    "Retry; check the qdrant container's logs."
                    if server_side
                    else _UNAUTHORIZED_STEP
                    if exc.status_code in (401, 403)
                    else "Check the collection name and Qdrant's version."
                ),
                retryable=server_side,
            ) from exc
        except (ResponseHandlingException, httpx.HTTPError, OSError) as exc:
            raise QdrantError(
                f"Qdrant at {self.url} could not {action}: {exc}. Is the service running?",
                retryable=True,
            ) from exc


@contextmanager
def connect(
    url: str, *, timeout_s: float = 60.0, api_key: SecretStr | None = None
) -> Iterator[Qdrant]:
    qdrant = Qdrant(url, timeout_s=timeout_s, api_key=api_key)
    try:
        yield qdrant
    finally:
        qdrant.close()
