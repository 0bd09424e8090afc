"""`sbx setup` against a real Prefect test server: idempotent, secrets stay secret."""

from __future__ import annotations

import contextlib

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from blocks.box import SbxBox, SbxSecrets
from deployments.bootstrap import MUTATION_LIMIT, WORK_POOL, setup_prefect


def test_setup_is_idempotent(prefect_server: str) -> None:
    # the server is shared by the session: another test's `sbx setup` may have run first
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(WORK_POOL)
        with contextlib.suppress(ObjectNotFound):
            client.delete_global_concurrency_limit_by_name(MUTATION_LIMIT)
    first = {(item.kind, item.name): item.outcome for item in setup_prefect()}
    second = {(item.kind, item.name): item.outcome for item in setup_prefect()}
    assert first[("work pool", WORK_POOL)] == "created"
    assert second[("work pool", WORK_POOL)] == "exists"
    assert first[("concurrency limit", MUTATION_LIMIT)] == "created"
    assert second[("concurrency limit", MUTATION_LIMIT)] == "exists"
    assert second[("block type", "sbx-box")] == "registered"
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(WORK_POOL).type == "process"
        assert client.read_global_concurrency_limit_by_name(MUTATION_LIMIT).limit == 1
        slugs = {bt.slug for bt in client.read_block_types()}
    assert {"sbx-box", "sbx-secrets"} <= slugs


def test_secret_block_round_trip_masks_values(prefect_server: str) -> None:
    setup_prefect()
    canary = "canary-9f3b2c-not-for-logs"
    SbxSecrets(aws_secret_access_key=SecretStr(canary)).save("test-secrets", overwrite=True)
    SbxBox(stack_dir="/srv/stack").save("test-box", overwrite=True)
    loaded = SbxSecrets.load("test-secrets")
    assert loaded.aws_secret_access_key is not None
    assert loaded.aws_secret_access_key.get_secret_value() == canary
    assert canary not in repr(loaded) and canary not in str(loaded.model_dump())
    assert SbxBox.load("test-box").stack_dir == "/srv/stack"
