"""The acting tasks of ``sbx incident contain``: each change, its change-log entry, its action.

Every task converges (a key already gone, a domain already off the list: nothing written, said
so) and records what it did in the same words as the plan (``ContainPlan.sentences``). Keys are
named by NAME and fingerprint only, in the change log and the incident record alike.
"""

from __future__ import annotations

import logging
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import ContainerNotFound
from tasks.changelog import append_change
from tasks.clients.docker_engine import DockerEngine, connect
from tasks.incident.contain import ContainPlan, remove_domain
from tasks.incident.keys import remove_keys
from tasks.incident.record import record_action
from tasks.status import compose_for
from tasks.upgrade.release import switch_images

log = logging.getLogger("sbx.incident")
STEP = "contain"
READY_WAIT_S = 60


def _record(config: SbxConfig, incident_id: str, summary: str, **details: object) -> None:
    record_action(config.stack_dir, incident_id, STEP, summary, details=dict(details))
    log.info("%s", summary)


@task(name="revoke-keys", cache_policy=NO_CACHE)
def revoke_keys(config: SbxConfig, incident_id: str, plan: ContainPlan) -> list[str]:
    """Remove the keys from the keys file (atomically; comments and order kept)."""
    path = config.stack_dir / plan.keys_file
    removed = remove_keys(path, {k.fingerprint for k in plan.revoke})
    done = []
    for key in plan.revoke:
        gone = any(r.fingerprint == key.fingerprint for r in removed)
        sentence = f"revoke key {key.name} ({key.fingerprint}) in {plan.keys_file}"
        if not gone:
            sentence += ": it was already gone"
        ref = {"name": key.name, "fingerprint": key.fingerprint}
        entry = append_change(
            config.stack_dir, action="incident-revoke-key", target=plan.keys_file,
            before={"key": ref}, after={"key": None, "incident": incident_id},
        )  # fmt: skip
        _record(config, incident_id, sentence, key=ref, revoked=[key.fingerprint],
                change_seq=entry.seq)  # fmt: skip
        done.append(sentence)
    return done


def _wait_running(engine: DockerEngine, project: str, service: str) -> str:
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        info = engine.service_container(project, service)
        if info.running and info.health in (None, "healthy"):
            return "running"
        if time.monotonic() > deadline:
            return f"{info.state}, health {info.health or '-'} after {READY_WAIT_S} s"
        time.sleep(0.5)


@task(name="restart-key-readers", cache_policy=NO_CACHE)
def restart_key_readers(config: SbxConfig, incident_id: str, plan: ContainPlan) -> list[str]:
    """Restart the services that read the keys file at start (a stopped one is left stopped:
    freeze may have stopped it on purpose; it reads the new file when started)."""
    project = compose_for(config).model().project
    done = []
    with connect() as engine:
        for service in plan.restart:
            sentence = f"restart {service} so it reads {plan.keys_file} again"
            try:
                info = engine.service_container(project, service)
            except ContainerNotFound:
                sentence += ": it has no container (it reads the file when created)"
                _record(config, incident_id, sentence, service=service)
                done.append(sentence)
                continue
            if not info.running:
                sentence += f": it is {info.state}, left so (it reads the file when started)"
            else:
                engine.restart(info.id)
                state = _wait_running(engine, project, service)
                if state != "running":
                    sentence += f": restarted, but it is {state}"
            entry = append_change(
                config.stack_dir, action="incident-restart", target=service,
                before={"state": info.state}, after={"reason": f"reads {plan.keys_file}",
                                                     "incident": incident_id},
            )  # fmt: skip
            _record(config, incident_id, sentence, service=service, change_seq=entry.seq)
            done.append(sentence)
    return done


@task(name="block-domains", cache_policy=NO_CACHE)
def block_domains(config: SbxConfig, incident_id: str, plan: ContainPlan) -> list[str]:
    """Remove each domain from every agent allowlist that names it (atomically, comments kept;
    the agents re-read their allowlist on every request)."""
    done = []
    for domain, paths in plan.block.items():
        for rel in paths:
            removed = remove_domain(config.stack_dir / rel, domain)
            sentence = f"remove {domain} from {rel}"
            if not removed:
                sentence += ": it was already gone"
            entry = append_change(
                config.stack_dir, action="incident-block-domain", target=rel,
                before={"entries": removed}, after={"entries": [], "incident": incident_id},
            )  # fmt: skip
            _record(config, incident_id, sentence, domain=domain, allowlist=rel,
                    blocked_domains=[domain], change_seq=entry.seq)  # fmt: skip
            done.append(sentence)
    return done


@task(name="recreate-services", cache_policy=NO_CACHE)
def recreate_services(config: SbxConfig, incident_id: str, plan: ContainPlan) -> list[str]:
    """New containers from the journal's clean digests, pinned the way 'sbx upgrade' pins."""
    project = compose_for(config).model().project
    before: dict[str, str | None] = {}
    with connect() as engine:
        for service in plan.recreate:
            try:
                info = engine.service_container(project, service)
                before[service] = info.repo_digests[0] if info.repo_digests else info.image_id
            except ContainerNotFound:
                before[service] = None
    switch_images(config, project, plan.recreate, force_recreate=True)
    done = []
    for service, digest in sorted(plan.recreate.items()):
        sentence = f"recreate {service} from {digest}"
        entry = append_change(
            config.stack_dir, action="incident-recreate", target=service,
            before={"image": before[service]}, after={"image": digest, "incident": incident_id},
        )  # fmt: skip
        _record(config, incident_id, sentence, service=service, image=digest,
                recreated=[service], change_seq=entry.seq)  # fmt: skip
        done.append(sentence)
    return done
