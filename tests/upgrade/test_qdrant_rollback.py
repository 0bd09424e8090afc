"""The Qdrant half of an upgrade's data rollback (issue #21 §1), on the Qdrant stand-in.

One stack for the module with only ``qdrant`` up, its image the registry's moving ``stable``
tag. Releases (images FROM the stand-in, pushed to the local registry): q1 as it is; q2 the same
server reporting another version (the stand-in has no failure modes, and a failed upgrade's
data path is the Open WebUI module's). As Qdrant, the stand-in stamps each collection's storage
with the version that opened it and refuses, at start, storage a newer version stamped; so the
pre-upgrade snapshot of the qdrant part is a physical copy (Qdrant stopped), put back before the
old image starts. The tests run in order; each starts from the q1 the previous one left.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bed.qdrant_seed import qdrant_client, seed_qdrant, snapshot_files
from bed.stack import OVERRIDE, RunningStack, prepare_stack, stop_stack
from qdrant_client import models
from upgrade_bed import Releases, Sbx, bring_up, cli_runner, journal, running_digest

from sbx.repository import Repository

OLD_VERSION, NEW_VERSION = "1.20.0", "1.20.1"
SERVICE = "qdrant"
COLLECTION, SEEDED = "docs", 40


@pytest.fixture(scope="module")
def qdrant_stack(
    qdrant_releases: Releases, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The example stack with only qdrant up, on the registry's ``stable`` tag (q1), seeded
    with one collection; the other services are marked not required (sbx.toml)."""
    root = tmp_path_factory.mktemp("qdrant-rollback")
    stack = prepare_stack(root / "stack", run_id)
    override = stack.path / OVERRIDE
    override.write_text(
        override.read_text().replace(
            f"  {SERVICE}:\n", f"  {SERVICE}:\n    image: {qdrant_releases.stable}\n"
        )
    )
    try:
        bring_up(stack, qdrant_releases, "q1", [SERVICE], root / "repo")
        seed_qdrant(stack.url(SERVICE), {COLLECTION: SEEDED}, stack.api_key(SERVICE))
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture
def sbx(prefect_server: str, qdrant_stack: RunningStack) -> Sbx:
    return cli_runner(prefect_server, qdrant_stack)


def points(stack: RunningStack) -> tuple[str, dict[str, list[int]]]:
    """(the version Qdrant reports, collection -> its point ids) as the live Qdrant answers."""
    client = qdrant_client(stack.url(SERVICE), stack.api_key(SERVICE))
    try:
        version = str(client.info().version)
        found = {}
        for col in client.get_collections().collections:
            records, _ = client.scroll(col.name, limit=1000, with_payload=False)
            found[col.name] = sorted(int(r.id) for r in records)
    finally:
        client.close()
    return version, found


def add_points(stack: RunningStack, ids: range) -> None:
    client = qdrant_client(stack.url(SERVICE), stack.api_key(SERVICE))
    try:
        client.upsert(
            COLLECTION,
            points=[models.PointStruct(id=i, vector=[1.0, 0.0, 0.0, float(i)]) for i in ids],
        )
    finally:
        client.close()


def stamps(stack: RunningStack) -> dict[str, str]:
    """collection -> the version stamped in its storage (the stand-in's version.info)."""
    found = (stack.path / "data" / "qdrant" / "storage" / "collections").glob("*/version.info")
    return {p.parent.name: p.read_text() for p in found}


def upgrade_to_q2(releases: Releases, stack: RunningStack, sbx: Sbx) -> dict[str, object]:
    """Publish q2, ``sbx upgrade qdrant``; the closed journal entry."""
    releases.publish("q2")
    up = sbx("upgrade", SERVICE)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "data: pre-upgrade snapshot" in up.stderr, up.stderr
    assert running_digest(releases.client, stack, SERVICE) == releases.digests["q2"]
    last = journal(stack.path)[-1]
    assert last["state"] == "committed" and last["data_parts"] == [SERVICE], last
    return last


def test_rollback_puts_the_old_storage_back_before_the_old_qdrant_starts(
    qdrant_releases: Releases, qdrant_stack: RunningStack, sbx: Sbx
) -> None:
    client = qdrant_releases.client
    assert running_digest(client, qdrant_stack, SERVICE) == qdrant_releases.digests["q1"]
    before = points(qdrant_stack)
    assert before == (OLD_VERSION, {COLLECTION: list(range(SEEDED))})
    upgraded = upgrade_to_q2(qdrant_releases, qdrant_stack, sbx)
    # the pre-upgrade snapshot is a physical copy of the storage, Qdrant stopped for it: the
    # only copy the old release can start on (a collection snapshot needs it running)
    repo = Repository.open(str(qdrant_stack.path.parent / "repo"))
    manifest = repo.load_snapshot(str(upgraded["data_snapshot"]))
    [part] = manifest.parts
    assert part.name == SERVICE and part.method == "stop-copy", part
    assert part.detail["mode"] == "stop-copy-start", part.detail
    # the new release stamped the storage with its version and writes points
    assert stamps(qdrant_stack) == {COLLECTION: NEW_VERSION}
    add_points(qdrant_stack, range(SEEDED, SEEDED + 7))
    assert points(qdrant_stack) == (NEW_VERSION, {COLLECTION: list(range(SEEDED + 7))})

    back = sbx("rollback", SERVICE)
    assert back.returncode == 0, back.stdout + back.stderr
    message = " ".join(back.stderr.split())
    assert f"data: restored data ({SERVICE}) from pre-upgrade snapshot {manifest.id}" in message
    assert running_digest(client, qdrant_stack, SERVICE) == qdrant_releases.digests["q1"]
    # exactly the pre-upgrade points and storage, in the old release
    assert points(qdrant_stack) == before
    assert stamps(qdrant_stack) == {COLLECTION: OLD_VERSION}
    last = journal(qdrant_stack.path)[-1]
    assert last["action"] == "rollback" and last["state"] == "committed", last
    assert str(last["data"]).startswith(f"restored data ({SERVICE})"), last
    # what the new release held is kept aside, not lost
    [kept] = sorted((qdrant_stack.path / ".sbx" / "restores").glob("*/data/qdrant"))
    assert "the changed data is kept in" in str(last["data"]), last
    assert (kept / "storage" / "collections" / COLLECTION / "version.info").read_text() == (
        NEW_VERSION
    )
    assert snapshot_files(qdrant_stack.path) == []


def test_the_old_qdrant_refuses_storage_the_new_one_stamped(
    qdrant_releases: Releases, qdrant_stack: RunningStack, sbx: Sbx
) -> None:
    """An image-only rollback (as sbx did before it copied Qdrant's storage) cannot work: the
    old release refuses to start, the gate fails and the new release comes back, data kept;
    the rollback with the data then succeeds."""
    client = qdrant_releases.client
    before = points(qdrant_stack)
    upgrade_to_q2(qdrant_releases, qdrant_stack, sbx)
    image_only = sbx("rollback", SERVICE, env={"SBX_UPGRADE__SNAPSHOT_DATA": "false"})
    assert image_only.returncode == 1, image_only.stdout + image_only.stderr
    refused = journal(qdrant_stack.path)[-1]
    assert refused["state"] == "rolled-back" and refused["gate"] == f"container:{SERVICE}"
    assert "exit code 1" in str(refused["detail"]), refused
    assert running_digest(client, qdrant_stack, SERVICE) == qdrant_releases.digests["q2"]
    assert points(qdrant_stack) == (NEW_VERSION, before[1])

    back = sbx("rollback", SERVICE)
    assert back.returncode == 0, back.stdout + back.stderr
    assert running_digest(client, qdrant_stack, SERVICE) == qdrant_releases.digests["q1"]
    assert points(qdrant_stack) == before
