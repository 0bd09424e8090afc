"""Alerts for scheduled work that failed outright (the nightly off-box copy), beside the health
checks' change-only alerts: a failed run is one event, so it is told once, when it happens."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from sbx.errors import AlertDeliveryFailed
from tasks.clients.notify import Notifier
from tasks.health.model import Delivery

log = logging.getLogger(__name__)


@task(name="alert-run-failed", cache_policy=NO_CACHE)
def alert_run_failed(config: SbxConfig, what: str, error: str, next_step: str) -> list[Delivery]:
    """Tell every alert target that takes "failing" notices that ``what`` failed; never raises."""
    subject = f"[sbx] FAILED {what} on {config.stack_dir.name}"
    body = f"{what} failed for the stack {config.stack_dir}: {error}\nNext step: {next_step}"
    notifier = Notifier()
    deliveries = []
    for name, target in config.alerts.items():
        if "failing" not in target.on:
            continue
        try:
            notifier.send(target.block, subject, body)
        except AlertDeliveryFailed as exc:
            log.warning("%s", exc)
            deliveries.append(
                Delivery(target=name, check=what, event="failing", delivered=False, error=str(exc))
            )
            continue
        log.info("alert: %s failed, sent to %s", what, name)
        deliveries.append(Delivery(target=name, check=what, event="failing", delivered=True))
    return deliveries
