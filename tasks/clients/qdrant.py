"""Qdrant client: collections, point counts, and snapshots through the real qdrant-client.

Snapshots are the no-downtime way to capture Qdrant (design.md): create one per collection,
stream its bytes to a local file (qdrant-client has no download helper, so the bytes come over
httpx with the same timeout), delete it on the server, and recover later by uploading it. SDK and
transport errors become :class:`QdrantError`: retryable for 5xx and connection failures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from sbx.errors import QdrantError


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

    def __init__(self, url: str, *, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # check_compatibility would warn on every version skew; the version is recorded instead
        self._client = QdrantClient(
            url=self.url, prefer_grpc=False, timeout=int(timeout_s), check_compatibility=False
        )
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False)

    def version(self) -> str:
        with self._translate("read the server version"):
            return str(self._client.info().version)

    def collections(self) -> list[str]:
        with self._translate("list collections"):
            return sorted(c.name for c in self._client.get_collections().collections)

    def point_count(self, collection: str) -> int:
        with self._translate(f"count points of collection '{collection}'"):
            return int(self._client.count(collection, exact=True).count)

    def snapshot_to_file(self, collection: str, dest_dir: Path) -> SnapshotFile:
        """Snapshot a collection, download it into ``dest_dir``, delete it on the server."""
        with self._translate(f"snapshot collection '{collection}'"):
            points = int(self._client.count(collection, exact=True).count)
            description = self._client.create_snapshot(collection, wait=True)
        if description is None:
            raise QdrantError(f"Qdrant at {self.url} created no snapshot of '{collection}'.")
        dest = dest_dir / f"{collection}.snapshot"
        digest = hashlib.sha256()
        url = f"{self.url}/collections/{collection}/snapshots/{description.name}"
        try:
            with self._http.stream("GET", url) as response, dest.open("wb") as out:
                response.raise_for_status()
                for block in response.iter_bytes(1 << 20):
                    digest.update(block)
                    out.write(block)
        except httpx.HTTPError as exc:
            raise QdrantError(
                f"Downloading snapshot {description.name} of '{collection}' from {self.url} "
                f"failed ({exc}). Retry; check free disk space in {dest_dir}.",
                retryable=True,
            ) from exc
        if description.checksum and digest.hexdigest() != description.checksum:
            raise QdrantError(
                f"Snapshot {description.name} of '{collection}' arrived damaged (sha256 "
                f"{digest.hexdigest()[:16]}…, Qdrant said {description.checksum[:16]}…). Retry.",
                retryable=True,
            )
        with self._translate(f"delete snapshot {description.name}"):
            self._client.delete_snapshot(collection, description.name, wait=True)
        return SnapshotFile(
            collection=collection,
            name=description.name,
            path=dest,
            size=dest.stat().st_size,
            sha256=digest.hexdigest(),
            points=points,
        )

    def recover_from_file(self, collection: str, path: Path) -> int:
        """Replace ``collection`` with the snapshot in ``path`` (upload); returns its points."""
        with self._translate(f"recover collection '{collection}' from {path.name}"):
            with path.open("rb") as handle:
                self._client.http.snapshots_api.recover_from_uploaded_snapshot(
                    collection_name=collection,
                    snapshot=handle,
                    wait=True,
                )
            return int(self._client.count(collection, exact=True).count)

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
def connect(url: str, *, timeout_s: float = 60.0) -> Iterator[Qdrant]:
    qdrant = Qdrant(url, timeout_s=timeout_s)
    try:
        yield qdrant
    finally:
        qdrant.close()
