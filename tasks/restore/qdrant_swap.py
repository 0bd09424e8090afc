"""Qdrant's collections in an in-place restore: recovered through its API, never by files.

Forward (inside the swap): the collections there now are snapshotted aside into
``.sbx/restores/<time>/qdrant-collections/``, then each staged snapshot is recovered, with the
key the running Qdrant expects. Back (after an unhealthy result): the flow first swaps the
files back and recreates the services on the previous configuration — which may hold another
key — then :func:`recover_previous_collections` waits for Qdrant to answer, reads its key
again, and recovers the collections that were aside.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from blocks.config import SbxConfig
from sbx.errors import RestoreUnhealthy
from tasks.clients.qdrant_ledger import STACK_LEDGER
from tasks.restore.kept import QDRANT_DIR, kept_dir
from tasks.status import StackStatus, read_stack_status

POLL_S = 1.0


def qdrant_endpoint(
    service: str | None, status: StackStatus
) -> tuple[str, SecretStr | None] | None:
    """Qdrant's URL and the key it expects, when it has a URL."""
    for svc in status.services:
        if svc.compose_service == service and svc.url:
            return svc.url, svc.credentials.api_key
    return None


def take_aside_and_recover(
    service: str | None,
    files: dict[str, str],
    sums: dict[str, str],
    status: StackStatus,
    stack: Path,
    stamp: str,
) -> dict[str, str]:
    """Snapshot the live collections aside, recover ``files`` (collection -> staged snapshot);
    the files taken aside, by collection."""
    from tasks.clients.qdrant import connect as connect_qdrant  # ~1.5 s import, only when needed

    endpoint = qdrant_endpoint(service, status)
    if endpoint is None:
        raise RestoreUnhealthy(
            f"Qdrant ({service}) has no reachable URL, so its collections cannot be recovered "
            "through the API. Start it and run the restore again."
        )
    aside_dir = kept_dir(stack, stamp) / QDRANT_DIR
    aside_dir.mkdir(parents=True, exist_ok=True)
    aside = {}
    with connect_qdrant(endpoint[0], api_key=endpoint[1]) as qdrant:
        for name in qdrant.collections():  # keep what is there now, to swap back
            snap = qdrant.snapshot_to_file(name, aside_dir, ledger=stack / STACK_LEDGER)
            aside[name] = str(snap.path)
        for name, file in files.items():
            qdrant.recover_from_file(name, Path(file), sha256=sums.get(name))
    return aside


@task(name="recover-previous-collections", cache_policy=NO_CACHE)
def recover_previous_collections(
    service: str | None, aside: dict[str, str], config: SbxConfig, timeout_s: float
) -> None:
    """Recover the collections taken aside, once Qdrant answers on the previous config."""
    from tasks.clients.qdrant import connect as connect_qdrant

    deadline = time.monotonic() + timeout_s
    while True:
        status = read_stack_status(config)  # the key as the restored-back files say
        svc = next((s for s in status.services if s.compose_service == service), None)
        endpoint = qdrant_endpoint(service, status)
        if svc is not None and svc.ok and endpoint is not None:
            break
        if time.monotonic() > deadline:
            where = Path(next(iter(aside.values()))).parent
            raise RestoreUnhealthy(
                f"Qdrant ({service}) did not answer within {timeout_s:.0f} s after the swap "
                f"back, so its previous collections were not recovered; they are kept in "
                f"{where}. Start Qdrant and recover each file through its snapshot upload API."
            )
        time.sleep(POLL_S)
    with connect_qdrant(endpoint[0], api_key=endpoint[1]) as qdrant:
        for name, file in aside.items():
            qdrant.recover_from_file(name, Path(file))
