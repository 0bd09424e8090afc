"""Alert delivery through Prefect notification blocks named ``block-type/name`` in sbx.toml.

Any block with ``notify(body, subject)`` works: Custom Webhook, Slack Webhook, an Apprise URL
(``AppriseNotificationBlock`` subclasses: email, Teams, Discord, ...). Blocks are loaded once per
run; every failure (missing block, refused URL, receiver error) is an :class:`AlertDeliveryFailed`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sbx.errors import AlertDeliveryFailed


class Notifier:
    """Loads notification blocks lazily and sends through them."""

    def __init__(self) -> None:
        self._blocks: dict[str, Any] = {}

    def send(self, block: str, subject: str, body: str) -> None:
        try:
            loaded = self._load(block)
            # Prefect's notification blocks swallow a failed send (an apprise receiver that is
            # down) unless asked to raise: without this a lost alert was recorded as delivered
            guard = getattr(loaded, "raise_on_failure", None)
            with guard() if callable(guard) else contextlib.nullcontext():
                loaded.notify(body=body, subject=subject)
        except AlertDeliveryFailed:
            raise
        except Exception as exc:  # any block type, any transport: never crash the health run
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AlertDeliveryFailed(block, detail[:300]) from exc

    def _load(self, name: str) -> Any:
        if name not in self._blocks:
            from prefect.blocks.core import Block

            # Block.load finds a block's class by its type slug among the classes imported so
            # far: without these a CLI or deployed health run cannot load sbx-apprise/... nor
            # Prefect's webhook block, whose module an sbx command runs only when used
            # (sbx/prefect_import.py; blocks.alerts runs Prefect's notification blocks)
            from prefect.blocks.webhook import Webhook  # noqa: F401

            import blocks.alerts  # noqa: F401

            if "/" not in name:
                raise AlertDeliveryFailed(
                    name, "expected 'block-type/name' (e.g. slack-webhook/ops)"
                )
            self._blocks[name] = Block.load(name)
        loaded = self._blocks[name]
        if not callable(getattr(loaded, "notify", None)):
            raise AlertDeliveryFailed(name, f"a {type(loaded).__name__} block cannot notify")
        return loaded
