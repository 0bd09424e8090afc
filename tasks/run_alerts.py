"""Alert delivery: one notice to one target (:func:`deliver`, used by the health flow's
change-only alerts too), and alerts for scheduled work that failed outright (the nightly off-box
copy): a failed run is one event, so it is told once, when it happens."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import AlertEvent, SbxConfig
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
    return [
        deliver(notifier, name, target.block, what, "failing", subject, body)
        for name, target in config.alerts.items()
        if "failing" in target.on
    ]


def deliver(
    notifier: Notifier,
    target: str,
    block: str,
    check: str,
    event: AlertEvent,
    subject: str,
    body: str,
) -> Delivery:
    """Send one notice through ``block``; a failed delivery is logged and returned, not raised."""
    try:
        notifier.send(block, subject, body)
    except AlertDeliveryFailed as exc:
        log.warning("%s", exc)
        return Delivery(target=target, check=check, event=event, delivered=False, error=str(exc))
    log.info("alert %s %s sent to %s", event, check, target)
    return Delivery(target=target, check=check, event=event, delivered=True)
