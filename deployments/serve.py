"""`sbx serve`: every deployment of prefect.yaml registered with the API, and a process worker
for the `sbx-box` pool running in the foreground.

Not Prefect's ``serve()``: it pauses every deployment it served when it stops, so a nightly
backup due while it was down would never run. A worker leaves the deployments and their
schedules on the server; a run that fell due while no worker polled stays Scheduled ("Late")
and runs as soon as the worker is back.

Each deployment is registered as ``<stack>-<verb>-<schedule>`` (``stack-backup-nightly``): the
name prefect.yaml gives it, after the slug of the stack directory it acts on, so the UI's
deployment list says what each one acts on. Deployments sbx registered earlier in the same work
pool for the same stack that are no longer declared (the names before this scheme among them)
are deleted: their schedules would otherwise keep running beside the new ones.

Registration is idempotent and keeps late runs: the server's deployment upsert deletes every
auto-scheduled run that has not started yet, late ones included, so a deployment whose
definition is unchanged is not written again. The definition's fingerprint is stored as the
deployment's version (``sbx-<hash>``) and compared on the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import socket
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectNotFound
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.workers.process import ProcessWorker
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from deployments.bootstrap import WORK_POOL
from sbx.errors import ConfigError

#: the repository root: prefect.yaml's entrypoints are relative to it
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str
    timezone: str = "UTC"


class ConcurrencySpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(ge=1)
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"


class WorkPoolSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = WORK_POOL
    work_queue_name: str = "default"


class DeploymentSpec(BaseModel):
    """One deployment as prefect.yaml declares it (the subset of keys sbx uses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    concurrency_limit: ConcurrencySpec | None = None
    work_pool: WorkPoolSpec = Field(default_factory=WorkPoolSpec)

    def for_box(self, box: str | None) -> DeploymentSpec:
        """This deployment for one box of a fleet: its own name, work pool and tag."""
        if not box:
            return self
        pool = pool_for_box(self.work_pool.name, box)  # checks the name
        return self.model_copy(
            update={
                "name": f"{self.name}-{box}",
                "tags": [*self.tags, f"box:{box}"],
                "work_pool": self.work_pool.model_copy(update={"name": pool}),
            }
        )

    def fingerprint(self, root: Path) -> str:
        """``sbx-<hash>`` of the definition and the code's directory: changes when either does."""
        payload = f"{root}\n{self.model_dump_json()}".encode()
        return "sbx-" + hashlib.sha256(payload).hexdigest()[:12]


class RegisteredDeployment(BaseModel):
    """What registration did with one deployment."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    full_name: str  # "flow-name/deployment-name", as `prefect deployment run` takes it
    deployment_id: str
    outcome: Literal["created", "updated", "unchanged", "retired"]
    schedules: list[str]
    version: str
    stack: str | None = None  # the stack its runs act on (its ``stack`` parameter)


#: the fleet view (flows/fleet.py), refreshed every 15 minutes by the one box of a fleet that
#: ``sbx serve --box NAME --fleet-view`` names: not in prefect.yaml, which every box serves
FLEET_VIEW = DeploymentSpec(
    name="fleet-view-every-15-minutes",
    entrypoint=f"{PROJECT_ROOT / 'flows' / 'fleet.py'}:publish_fleet",
    description="Every box of the fleet at a glance (the `fleet` artifact): last backup, "
    "off-box copy, drill and RTO, health, open incident, each run linked.",
    tags=["fleet", "scheduled"],
    schedules=[ScheduleSpec(cron="*/15 * * * *")],
    concurrency_limit=ConcurrencySpec(limit=1, collision_strategy="CANCEL_NEW"),
)

#: what ``sbx serve --json`` prints
RegisteredList = TypeAdapter(list[RegisteredDeployment])


def pool_for_box(pool: str, box: str | None) -> str:
    """``sbx-box`` on a single box; ``sbx-box-<box>`` for one box of a fleet."""
    if box and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", box):
        raise ConfigError(
            f"Box name {box!r} (--box / SBX_BOX) must be lowercase letters, digits and dashes, "
            "at most 63 characters: it becomes part of deployment and work pool names."
        )
    return f"{pool}-{box}" if box else pool


def stack_slug(stack: str | Path) -> str:
    """The stack directory's name as deployment names carry it: lowercase letters, digits and
    dashes (Prefect refuses '/', '%', '&', '<' and '>' in a name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", Path(stack).name.lower()).strip("-")
    return slug or "stack"


def read_prefect_yaml(path: Path) -> list[DeploymentSpec]:
    """The deployments prefect.yaml declares; ConfigError naming the entry that is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"Cannot read {path}: {exc}. 'sbx serve' registers the deployments it declares; "
            "pass --prefect-yaml to point at the project's prefect.yaml."
        ) from exc
    entries = data.get("deployments") or []
    specs: list[DeploymentSpec] = []
    for index, entry in enumerate(entries):
        try:
            specs.append(DeploymentSpec.model_validate(entry))
        except ValidationError as exc:
            name = entry.get("name", "?") if isinstance(entry, dict) else "?"
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{path}: deployment #{index + 1} ({name}), key '{where}': {first['msg']}. "
                "sbx serve understands name, entrypoint, description, tags, parameters, "
                "schedules (cron, timezone), concurrency_limit and work_pool."
            ) from exc
    if not specs:
        raise ConfigError(f"{path} declares no deployments: nothing for 'sbx serve' to run.")
    return specs


def register_deployments(
    specs: list[DeploymentSpec], root: Path = PROJECT_ROOT, stack: Path | None = None
) -> list[RegisteredDeployment]:
    """Create or update each deployment as declared; leave unchanged ones (and their late runs).

    ``stack`` becomes the ``stack`` parameter of every flow that takes one (unless prefect.yaml
    sets it): a scheduled run acts on the box ``sbx init`` named, not on whatever the worker's
    environment happens to say.
    """
    results = []
    with get_client(sync_client=True) as client:
        for declared in specs:
            flow: Flow[..., Any] = load_flow_from_entrypoint(str(root / declared.entrypoint))
            spec = declared
            if stack is not None and "stack" in flow.parameters.properties:
                spec = declared.model_copy(
                    update={"parameters": {"stack": str(stack), **declared.parameters}}
                )
            acts_on = spec.parameters.get("stack")
            if acts_on:  # named for what it acts on: stack-backup-nightly
                spec = spec.model_copy(update={"name": f"{stack_slug(str(acts_on))}-{spec.name}"})
            version = spec.fingerprint(root)
            full_name = f"{flow.name}/{spec.name}"
            schedules = [f"{s.cron} ({s.timezone})" for s in spec.schedules]
            try:
                existing = client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                existing = None
            if (
                existing is not None
                and existing.version == version
                and not existing.paused
                and existing.work_pool_name == spec.work_pool.name
            ):
                results.append(
                    RegisteredDeployment(
                        full_name=full_name,
                        deployment_id=str(existing.id),
                        outcome="unchanged",
                        schedules=schedules,
                        version=version,
                        stack=acts_on,
                    )
                )
                continue
            limit = spec.concurrency_limit
            deployment_id = client.create_deployment(  # an upsert on (flow, name)
                flow_id=client.create_flow_from_name(flow.name),
                name=spec.name,
                version=version,
                description=spec.description,
                tags=spec.tags,
                parameters=spec.parameters,
                schedules=[
                    DeploymentScheduleCreate(
                        schedule=CronSchedule(cron=s.cron, timezone=s.timezone), active=True
                    )
                    for s in spec.schedules
                ],
                concurrency_limit=limit.limit if limit else None,
                concurrency_options=(
                    ConcurrencyOptions(
                        collision_strategy=ConcurrencyLimitStrategy(limit.collision_strategy)
                    )
                    if limit
                    else None
                ),
                work_pool_name=spec.work_pool.name,
                work_queue_name=spec.work_pool.work_queue_name,
                entrypoint=spec.entrypoint,
                path=str(root),
                # the worker runs each flow from the project's directory, as `prefect deploy`
                # with a set_working_directory pull step would
                pull_steps=[
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(root)}}
                ],
                parameter_openapi_schema=flow.parameters.model_dump(),
                paused=False,
            )
            results.append(
                RegisteredDeployment(
                    full_name=full_name,
                    deployment_id=str(deployment_id),
                    outcome="created" if existing is None else "updated",
                    schedules=schedules,
                    version=version,
                    stack=acts_on,
                )
            )
        if stack is not None:
            pools = {spec.work_pool.name for spec in specs}
            results += _retire_superseded(client, results, pools, str(stack))
    return results


def _retire_superseded(
    client: SyncPrefectClient, kept: list[RegisteredDeployment], pools: set[str], stack: str
) -> list[RegisteredDeployment]:
    """Delete what sbx registered earlier in ``pools`` for ``stack`` (or for no stack: the
    deployments before they named theirs) that ``kept`` no longer holds."""
    keep = {done.deployment_id for done in kept}
    retired = []
    found = client.read_deployments(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=sorted(pools))), limit=200
    )
    for old in found:
        acts_on = old.parameters.get("stack")
        if (
            str(old.id) in keep
            or not (old.version or "").startswith("sbx-")  # not registered by sbx
            or acts_on not in (None, stack)  # another stack's, served into the same pool
        ):
            continue
        client.delete_deployment(old.id)
        retired.append(
            RegisteredDeployment(
                full_name=f"{client.read_flow(old.flow_id).name}/{old.name}",
                deployment_id=str(old.id),
                outcome="retired",
                schedules=[],
                version=old.version or "",
                stack=acts_on,
            )
        )
    return retired


def run_worker(
    pool: str = WORK_POOL,
    *,
    name: str | None = None,
    printer: Callable[[str], None] = print,
) -> None:
    """Run a process worker for ``pool`` until SIGTERM or SIGINT; then stop it cleanly."""
    asyncio.run(_run_worker(pool, name or f"sbx-{socket.gethostname()}", printer))


async def _run_worker(pool: str, name: str, printer: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    # create_pool_if_not_found=False: `sbx setup` made the pool with sbx's description
    worker = ProcessWorker(work_pool_name=pool, name=name, create_pool_if_not_found=False)
    running = asyncio.create_task(worker.start(printer=printer))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for task in (running, stopping):
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    if running in done and not received:
        running.result()  # the worker ended on its own: raise what ended it
    printer(f"worker {name!r} stopped ({', '.join(received) or 'ended'})")
