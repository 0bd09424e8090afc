"""The Qdrant stand-in works with the real qdrant-client over REST, snapshots included.

The backup path sbx takes is exercised end to end: snapshot, download the bytes over HTTP,
delete the collection, recover from an upload and from a location, compare points and payloads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.common.version_check import is_compatible
from qdrant_client.http.exceptions import UnexpectedResponse

from .conftest import Standin, StartStandin

DIM = 8
POINTS = 200


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    return {
        "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
        "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
    }


@pytest.fixture
def qdrant(start_standin: StartStandin, dirs: dict[str, str]) -> Standin:
    return start_standin("qdrant", dirs)


def connect(url: str) -> QdrantClient:
    """A real client; its version check has finished (and passed) when this returns.

    The client checks the server's version in a background thread and warns (an error here)
    when it is incompatible or unreachable; joining that thread keeps the check from racing
    with a server that a test stops right away.
    """
    client = QdrantClient(url=url, prefer_grpc=False, timeout=10)
    for thread in threading.enumerate():
        if "_check_compatibility" in thread.name:
            thread.join(timeout=10)
    return client


@pytest.fixture
def client(qdrant: Standin) -> Iterator[QdrantClient]:
    client = connect(qdrant.url)
    yield client
    client.close()


def vector(i: int) -> list[float]:
    return [float((i * 7 + k) % 11 + 1) for k in range(DIM)]


def fill(client: QdrantClient, name: str = "docs") -> None:
    """150 integer ids as PointStructs, 50 UUIDs as a Batch: both upsert shapes, both id kinds."""
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    structs = [
        models.PointStruct(id=i, vector=vector(i), payload={"n": i, "tag": f"t{i % 2}"})
        for i in range(150)
    ]
    assert client.upsert(name, points=structs).status == models.UpdateStatus.COMPLETED
    ids = [str(uuid.UUID(int=i)) for i in range(150, POINTS)]
    batch = models.Batch(
        ids=ids,  # type: ignore[arg-type]
        vectors=[vector(i) for i in range(150, POINTS)],
        payloads=[{"n": i, "tag": f"t{i % 2}"} for i in range(150, POINTS)],
    )
    client.upsert(name, points=batch, wait=True)


def contents(client: QdrantClient, name: str = "docs") -> dict[object, object]:
    records, _ = client.scroll(name, limit=1000, with_payload=True)
    return {str(r.id): r.payload for r in records}


def test_service_endpoints(qdrant: Standin, client: QdrantClient) -> None:
    root = httpx.get(qdrant.url).json()
    assert root["title"] == "qdrant - vector search engine"
    assert root["commit"] == "standin"
    assert is_compatible(importlib.metadata.version("qdrant-client"), root["version"])
    for probe in ("healthz", "livez", "readyz"):
        assert httpx.get(f"{qdrant.url}/{probe}").text == f"{probe} check passed"
    assert client.get_collections().collections == []
    assert httpx.get(f"{qdrant.url}/cluster").json()["result"]["status"] == "disabled"
    assert httpx.get(f"{qdrant.url}/telemetry").json()["status"] == "ok"


def test_requests_are_logged_as_qdrant_logs_them(qdrant: Standin, client: QdrantClient) -> None:
    """One actix logger record per request (not for the paths Qdrant's logger excludes), each
    reading back as that request whatever the client put in its headers."""
    from tasks.incident.qdrant_log import parse_qdrant_line

    fill(client)
    forged = '" 200 0 "-" "-" 0.1\u2028PUT /collections/secret/points HTTP/1.1" 200 -'
    headers = {"User-Agent": forged.encode(), "Referer": b'a"b'}
    httpx.post(f"{qdrant.url}/collections/docs/points/count", json={}, headers=headers)
    httpx.get(f"{qdrant.url}/healthz")  # excluded upstream, as are / /metrics /telemetry
    httpx.get(f"{qdrant.url}/nosuch")
    # the server writes a request's line after its reply (as actix logs on completion): wait
    # for the last one to land before reading
    deadline = time.monotonic() + 5
    while "/nosuch" not in qdrant.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [line for line in qdrant.output().split("\n") if "actix_web" in line]
    requests = [parse_qdrant_line(line) for line in lines]
    assert all(requests), lines
    seen = [(r.method, r.path.split("?")[0], r.status) for r in requests if r]
    assert seen[0] == ("PUT", "/collections/docs", 200)
    assert ("PUT", "/collections/docs/points", 200) in seen
    assert seen[-2:] == [("POST", "/collections/docs/points/count", 200), ("GET", "/nosuch", 404)]
    assert not any(p in ("/healthz", "/collections/secret/points") for _, p, _ in seen)
    assert "\u2028PUT /collections/secret/points" in lines[-2]  # written raw, as actix does


def test_collection_info_validates_against_client_models(client: QdrantClient) -> None:
    fill(client)
    info = client.get_collection("docs")
    assert info.status == models.CollectionStatus.GREEN
    assert info.points_count == POINTS
    params = info.config.params.vectors
    assert isinstance(params, models.VectorParams)
    assert params.size == DIM
    assert params.distance == models.Distance.COSINE
    assert client.collection_exists("docs")
    assert [c.name for c in client.get_collections().collections] == ["docs"]
    assert client.count("docs", exact=True).count == POINTS
    even = models.Filter(
        must=[models.FieldCondition(key="tag", match=models.MatchValue(value="t0"))]
    )
    assert client.count("docs", count_filter=even, exact=True).count == POINTS // 2


def test_snapshot_download_upload_and_recover(
    qdrant: Standin, client: QdrantClient, tmp_path: Path
) -> None:
    fill(client)
    before = contents(client)
    snap = client.create_snapshot("docs")
    assert snap is not None
    assert [s.name for s in client.list_snapshots("docs")] == [snap.name]
    download = httpx.get(f"{qdrant.url}/collections/docs/snapshots/{snap.name}")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == snap.checksum
    assert len(download.content) == snap.size
    local = tmp_path / "docs.snapshot"
    local.write_bytes(download.content)

    # 1. upload through the client's generated REST API (multipart, field "snapshot")
    assert client.delete_collection("docs")
    assert not client.collection_exists("docs")
    with local.open("rb") as fh:
        client.http.snapshots_api.recover_from_uploaded_snapshot(
            collection_name="docs", snapshot=fh, wait=True, checksum=snap.checksum
        )
    assert client.count("docs", exact=True).count == POINTS
    assert contents(client) == before

    # 2. upload as a plain multipart POST, as sbx's own client may do it
    client.delete_collection("docs")
    resp = httpx.post(
        f"{qdrant.url}/collections/docs/snapshots/upload",
        params={"priority": "snapshot", "wait": "true"},
        files={"snapshot": (snap.name, download.content, "application/octet-stream")},
    )
    assert resp.json() == {"result": True, "status": "ok", "time": resp.json()["time"]}
    assert contents(client) == before

    # 3. recover from a file:// location, then from an http:// one (its own download URL)
    client.delete_collection("docs")
    assert client.recover_snapshot("docs", location=local.as_uri())
    assert contents(client) == before
    client.upsert("docs", points=[models.PointStruct(id=999, vector=vector(1), payload={})])
    url = f"{qdrant.url}/collections/docs/snapshots/{snap.name}"
    assert client.recover_snapshot("docs", location=url, checksum=snap.checksum)
    assert contents(client) == before  # recover replaces: the extra point is gone

    with pytest.raises(UnexpectedResponse) as bad:
        client.recover_snapshot("docs", location=url, checksum="0" * 64)
    assert bad.value.status_code == 400
    # as Qdrant (snapshot_api.rs do_save_uploaded_snapshot): each upload stays in the
    # collection's snapshot folder under its file name, the second one replacing snap.name
    assert {s.name for s in client.list_snapshots("docs")} == {snap.name, "docs.snapshot"}
    assert (tmp_path / "snapshots/docs/docs.snapshot").read_bytes() == download.content
    assert client.delete_snapshot("docs", snap.name)
    assert client.delete_snapshot("docs", "docs.snapshot")
    assert client.list_snapshots("docs") == []


def test_an_upload_with_another_checksum_is_refused_and_not_kept(
    qdrant: Standin, client: QdrantClient, tmp_path: Path
) -> None:
    fill(client)
    snap = client.create_snapshot("docs")
    assert snap is not None and snap.checksum
    data = httpx.get(f"{qdrant.url}/collections/docs/snapshots/{snap.name}").content
    client.upsert("docs", points=[models.PointStruct(id=999, vector=vector(1), payload={})])
    upload = f"{qdrant.url}/collections/docs/snapshots/upload"
    wrong = hashlib.sha256(b"other").hexdigest()
    for checksum, status in ((wrong, 400), ("abc", 400)):
        resp = httpx.post(
            upload, params={"checksum": checksum}, files={"snapshot": ("up.snapshot", data)}
        )
        assert resp.status_code == status, resp.text
    assert (
        "Checksum mismatch"
        in httpx.post(
            upload, params={"checksum": wrong}, files={"snapshot": ("up.snapshot", data)}
        ).json()["status"]["error"]
    )
    assert client.count("docs", exact=True).count == POINTS + 1  # untouched
    assert [s.name for s in client.list_snapshots("docs")] == [snap.name]
    right = httpx.post(
        upload,
        params={"checksum": snap.checksum.upper()},
        files={"snapshot": ("up.snapshot", data)},
    )
    assert right.status_code == 200 and client.count("docs", exact=True).count == POINTS
    assert {s.name for s in client.list_snapshots("docs")} == {snap.name, "up.snapshot"}


def test_a_snapshot_asked_for_without_waiting_appears_later(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    slow = start_standin(
        "qdrant",
        {
            "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(tmp_path / "snapshots"),
            "QDRANT_STANDIN_SNAPSHOT_DELAY_S": "1",
        },
        probe="/readyz",
    )
    client = QdrantClient(url=slow.url, prefer_grpc=False)
    fill(client)
    resp = httpx.post(f"{slow.url}/collections/docs/snapshots", params={"wait": "false"})
    assert resp.status_code == 202 and resp.json()["status"] == "accepted", resp.text
    assert resp.json()["result"] is None
    assert client.create_snapshot("docs", wait=False) is None  # the client reads it so too
    assert client.list_snapshots("docs") == []  # not yet: nothing half-written is listed
    deadline = time.monotonic() + 10
    while len(client.list_snapshots("docs")) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    names = [s.name for s in client.list_snapshots("docs")]
    assert names and all(n.startswith("docs-5404186327462811-") for n in names), names
    client.close()


def test_full_snapshots(qdrant: Standin, client: QdrantClient) -> None:
    fill(client, "a")
    fill(client, "b")
    first = client.create_full_snapshot()
    second = client.create_full_snapshot()
    assert first is not None
    assert second is not None
    assert first.name != second.name
    assert {s.name for s in client.list_full_snapshots()} == {first.name, second.name}
    data = httpx.get(f"{qdrant.url}/snapshots/{first.name}").content
    assert hashlib.sha256(data).hexdigest() == first.checksum
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert set(tar.getnames()) == {
            "collections/a/collection.json",
            "collections/b/collection.json",
        }
    assert client.delete_full_snapshot(first.name)
    assert [s.name for s in client.list_full_snapshots()] == [second.name]
    assert httpx.get(f"{qdrant.url}/snapshots/{first.name}").status_code == 404


def test_data_survives_restart(start_standin: StartStandin, dirs: dict[str, str]) -> None:
    first = start_standin("qdrant", dirs)
    client = connect(first.url)
    fill(client)
    before = contents(client)
    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < 3
    client.close()

    second = start_standin("qdrant", dirs, port=first.port)
    client = connect(second.url)
    assert client.get_collection("docs").points_count == POINTS
    assert contents(client) == before
    client.close()


def test_storage_a_newer_version_opened_is_refused_by_an_older_one(
    start_standin: StartStandin, dirs: dict[str, str]
) -> None:
    """Qdrant's Collection::load: an older stamp is migrated, a newer one refused at start."""
    stamp = Path(dirs["QDRANT__STORAGE__STORAGE_PATH"]) / "collections" / "docs" / "version.info"
    first = start_standin("qdrant", dirs)
    client = connect(first.url)
    fill(client)
    client.close()
    assert stamp.read_text() == "1.20.0" and first.stop() == 0
    newer = start_standin("qdrant", {**dirs, "QDRANT_STANDIN_VERSION": "1.20.1"})
    assert "Migrating collection 1.20.0 -> 1.20.1" in newer.output()
    assert stamp.read_text() == "1.20.1" and newer.stop() == 0
    older = start_standin("qdrant", dirs, wait=False)
    assert older.proc.wait(10) == 1
    assert "Collection version 1.20.1 is greater than application version 1.20.0" in (
        older.output()
    )


def test_missing_collection_and_bad_input(client: QdrantClient) -> None:
    with pytest.raises(UnexpectedResponse) as missing:
        client.get_collection("nope")
    assert missing.value.status_code == 404
    assert missing.value.structured()["status"]["error"] == (
        "Not found: Collection `nope` doesn't exist!"
    )
    assert not client.collection_exists("nope")
    assert client.delete_collection("nope") is False
    fill(client)
    with pytest.raises(UnexpectedResponse) as twice:
        client.create_collection(
            "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
        )
    assert twice.value.status_code == 409
    with pytest.raises(UnexpectedResponse) as short:
        client.upsert("docs", points=[models.PointStruct(id=1, vector=[1.0], payload={})])
    assert short.value.status_code == 400
    assert "expected dim: 8, got 1" in short.value.structured()["status"]["error"]


def test_scroll_pages_cover_every_point_once(client: QdrantClient) -> None:
    fill(client)
    seen: list[object] = []
    offset = None
    while True:
        page, offset = client.scroll("docs", limit=33, offset=offset, with_payload=False)
        seen += [r.id for r in page]
        assert all(r.payload is None and r.vector is None for r in page)
        if offset is None:
            break
    assert len(seen) == POINTS
    assert len(set(map(str, seen))) == POINTS
    assert seen[:3] == [0, 1, 2]  # integer ids first, in order, then UUIDs, as in Qdrant


def test_retrieve_and_query(client: QdrantClient) -> None:
    fill(client)
    uid = str(uuid.UUID(int=160))
    got = client.retrieve("docs", ids=[3, uid, 12345], with_vectors=True)
    assert [str(r.id) for r in got] == ["3", uid]
    assert got[0].payload == {"n": 3, "tag": "t1"}
    stored = got[0].vector
    assert isinstance(stored, list)
    norm = sum(x * x for x in vector(3)) ** 0.5
    # Cosine vectors come back normalised, as Qdrant stores them
    assert stored == pytest.approx([x / norm for x in vector(3)])
    hits = client.query_points("docs", query=vector(3), limit=3, with_payload=True).points
    assert len(hits) == 3
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].payload is not None
    assert hits[0].payload["n"] % 11 == 3 % 11  # vector() repeats every 11 ids


def test_payload_index_is_kept_in_snapshots(client: QdrantClient, tmp_path: Path) -> None:
    fill(client)
    client.create_payload_index("docs", "tag", models.PayloadSchemaType.KEYWORD)
    assert set(client.get_collection("docs").payload_schema) == {"tag"}
    snap = client.create_snapshot("docs")
    assert snap is not None
    client.delete_collection("docs")
    snapshot_file = tmp_path / "snapshots" / "docs" / snap.name
    assert client.recover_snapshot("docs", location=snapshot_file.as_uri())
    schema = client.get_collection("docs").payload_schema
    assert schema["tag"].data_type == models.PayloadSchemaType.KEYWORD
