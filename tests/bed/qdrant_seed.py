"""Test data for a Qdrant (the stand-in or a real one): collections of known point counts."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient, models


def seed_qdrant(url: str, collections: dict[str, int], api_key: str | None = None) -> None:
    """Create each collection with ``count`` 4-dimensional points through the real client."""
    client = qdrant_client(url, api_key)
    for name, count in collections.items():
        client.create_collection(
            name, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT)
        )
        client.upsert(
            name,
            points=[
                models.PointStruct(id=i, vector=[float(i), 1.0, 0.0, 0.5], payload={"n": i})
                for i in range(count)
            ],
        )
    client.close()


def snapshot_files(stack: Path) -> list[str]:
    """Every file in the live Qdrant's snapshot folder (the example mounts data/qdrant/snapshots
    there): Qdrant keeps each snapshot made or uploaded until someone deletes it."""
    folder = stack / "data" / "qdrant" / "snapshots"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def qdrant_client(url: str, api_key: str | None) -> QdrantClient:
    """The real client, with the key as Qdrant's ``api-key`` header (``api_key=`` warns on every
    plain-http connection, an error under pytest)."""
    headers = {"api-key": api_key} if api_key else {}
    return QdrantClient(url=url, prefer_grpc=False, headers=headers)
