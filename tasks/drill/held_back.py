"""What a drill checks of a GPU service it does not start (tasks/drill/gpu.py) instead.

- ``data:gpu-files:<path>``: every file the service reads (each of its mounts, in the restored
  tree) is there and hashes to the sha256 the snapshot recorded; in a model directory with a
  ``SHA256SUMS``, also to its line there (a model file damaged on the box before the backup
  keeps its damage in the snapshot, and only the model's own sums show it). A mount shared by
  several GPU services (both vLLMs read ``data/models``) is hashed once.
- ``live:<service>``: the live service answers, read-only: ``GET /health`` (its health path),
  and for an OpenAI-style service ``GET /v1/models`` with its key (tasks/keys.py), listing the
  models it serves. No completion: the live GPU is the box's, not the drill's.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig, ServiceKind
from sbx.hashing import sha256_file
from sbx.repository import Entry, SnapshotManifest
from tasks.backup.methods import SUMS, read_sums
from tasks.clients.health_http import HealthHttp
from tasks.drill.data import check_result
from tasks.drill.gpu import NOT_IN_SNAPSHOT, HeldBack, read_paths
from tasks.health.checks import Outcome, failing, ok
from tasks.health.context import read_context
from tasks.health.model import CheckResult, ServiceTarget
from tasks.units import human_bytes

SHOWN = 5  # problems named in one check's line


@task(name="check-gpu-service-files", cache_policy=NO_CACHE)
def check_held_back_files(
    stack_dir: Path, manifest: SnapshotManifest, held: list[HeldBack]
) -> list[CheckResult]:
    """One result per path the held-back services read: restored files against their hashes."""
    entries = [e for part in manifest.parts if part.status == "captured" for e in part.entries]
    results = []
    for path, readers in sorted(read_paths(held).items()):
        started = time.perf_counter()
        who = ", ".join(readers)
        if path.startswith(NOT_IN_SNAPSHOT):
            outcome = failing(
                f"{who} reads {path.removeprefix(NOT_IN_SNAPSHOT)}, which the snapshot does "
                "not hold",
                "Add the mount's source to a part in sbx.toml (docs/real-box.md).",
            )
        else:
            under = [e for e in entries if e.path == path or e.path.startswith(f"{path}/")]
            outcome = _files(stack_dir, path, who, under)
        results.append(check_result(f"data:gpu-files:{path}", "data", path, outcome, started))
    return results


def _files(stack_dir: Path, path: str, who: str, entries: list[Entry]) -> Outcome:
    files = [e for e in entries if e.type == "file"]
    if not files:
        return failing(
            f"{path} (read by {who}): the snapshot holds no file there",
            "Check the part that holds it ('sbx snapshots', 'sbx diff').",
        )
    digests: dict[str, str] = {}
    bad: list[str] = []
    unhashed = 0
    for entry in files:
        restored = stack_dir / entry.path
        if not restored.is_file():
            bad.append(f"{entry.path} missing")
            continue
        digests[entry.path] = sha256_file(restored)
        if entry.sha256 is None:
            unhashed += 1  # a part that records no sha256 (restore checked its own hash)
        elif digests[entry.path] != entry.sha256:
            bad.append(f"{entry.path} differs from the snapshot's sha256")
    sums = [e.path for e in files if e.path.endswith(f"/{SUMS}")]
    for sums_path in sums:
        base = sums_path.rsplit("/", 1)[0]
        for name, digest in read_sums(stack_dir / sums_path):
            got = digests.get(f"{base}/{name}")
            if got is None:
                bad.append(f"{base}/{name} (in {SUMS}) missing")
            elif got != digest:
                bad.append(f"{base}/{name} differs from its {SUMS}")
    size = sum(e.content_size for e in files)
    if bad:
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        return failing(
            f"{path} (read by {who}): {', '.join(bad[:SHOWN])}{more}",
            "Restore the model from its source, then back it up again.",
        )
    unchecked = f"; {unhashed} without a recorded sha256" if unhashed else ""
    return ok(
        f"{path} (read by {who}): {len(files)} files ({human_bytes(size)}) match the snapshot's "
        f"sha256 and {len(sums)} {SUMS}{unchecked}",
        files=len(files),
    )


@task(name="check-live-gpu-services", cache_policy=NO_CACHE)
def check_live_services(config: SbxConfig, held: list[HeldBack]) -> list[CheckResult]:
    """Read-only calls to each live GPU service the drill did not start."""
    ctx = read_context(config)  # the live stack: compose config and a container listing
    by_compose = {t.config.compose_service: t for t in ctx.services.values()}
    results = []
    with HealthHttp(timeout_s=config.probe_timeout_s) as http:
        for service in held:
            started = time.perf_counter()
            outcome = _live(by_compose.get(service.service), service, http)
            results.append(
                check_result(f"live:{service.service}", "live", service.service, outcome, started)
            )
    return results


def _live(target: ServiceTarget | None, service: HeldBack, http: HealthHttp) -> Outcome:
    name = service.service
    if target is None or target.url is None:
        return failing(
            f"not started in the scratch project ({service.reason}), and the live {name} "
            "publishes no port to check",
            f"Start it: 'docker compose up -d {name}', or set its url in sbx.toml [services].",
        )
    health = http.get(target.url + target.config.health_path)
    if not health.ok:
        return failing(
            f"the live {name}: {target.config.health_path} {health.summary}",
            f"Read its log: 'docker compose logs --tail 100 {name}' in the live stack.",
        )
    seen = f"the live {name} answers {target.config.health_path} ({health.elapsed_ms:.0f} ms)"
    if target.config.kind is ServiceKind.OPENAI:
        listed = http.get(f"{target.url}/v1/models", key=target.credentials.for_reading)
        body = listed.body() if listed.ok else None
        data = body.get("data") if isinstance(body, dict) else None
        ids = [str(m.get("id")) for m in data or [] if isinstance(m, dict)]
        if not ids:
            return failing(
                f"{seen}, but /v1/models: {listed.summary if not listed.ok else 'no model'}",
                "Check its key (docs/real-box.md) and its log.",
            )
        seen += f"; /v1/models lists {', '.join(ids)}"
    relay = (
        f"; restored consumers reach it read-only through {service.relay}"
        if service.relay
        else "; no relay (its live container is not running)"
    )
    return ok(f"{seen}{relay}")
