"""What the Prefect API recorded: the run history tests check (the audit trail users read)."""

from __future__ import annotations

import asyncio


def flow_run_states(flow_name: str) -> list[str]:
    """State types (COMPLETED, FAILED, …) of the flow's runs, oldest first, on the API that
    Prefect's settings point at (the test server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                sort=FlowRunSort.START_TIME_ASC,
            )
        return [run.state.type.value if run.state else "" for run in runs]

    return asyncio.run(read())


def newest_artifact(key: str) -> tuple[str, str] | None:
    """(type, data) of the newest artifact under ``key``, or None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        newest = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return (str(newest[0].type), str(newest[0].data)) if newest else None
