"""`sbx setup`: make a Prefect API ready for sbx, idempotently.

Registers sbx's block types, creates the process work pool that `sbx serve` runs scheduled flows
in, and the global concurrency limit that lets one mutating flow at a time act on a stack. Run it
as often as you like: existing objects are left as they are and reported as such.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker
from pydantic import BaseModel, ConfigDict, TypeAdapter

from blocks.box import BLOCK_TYPES

WORK_POOL = "sbx-box"
#: one mutating flow (backup, restore, prune, upgrade, incident) at a time per stack
MUTATION_LIMIT = "sbx-stack-mutation"


class SetupItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    name: str
    outcome: str  # "created" | "exists" | "registered"


#: what ``sbx setup --json`` prints
SetupItems = TypeAdapter(list[SetupItem])


def setup_prefect(work_pool: str = WORK_POOL) -> list[SetupItem]:
    """Register block types, create the work pool and the concurrency limit (idempotent)."""
    items = []
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()  # an upsert on the server side
        items.append(
            SetupItem(
                kind="block type", name=block_type.get_block_type_slug(), outcome="registered"
            )
        )
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
            items.append(SetupItem(kind="work pool", name=work_pool, outcome="exists"))
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=work_pool,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="Runs sbx's scheduled flows on this box (sbx serve).",
                )
            )
            items.append(SetupItem(kind="work pool", name=work_pool, outcome="created"))
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=MUTATION_LIMIT, limit=1)
            )
            items.append(
                SetupItem(kind="concurrency limit", name=MUTATION_LIMIT, outcome="created")
            )
        except ObjectAlreadyExists:
            items.append(SetupItem(kind="concurrency limit", name=MUTATION_LIMIT, outcome="exists"))
    return items
