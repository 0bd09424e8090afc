"""A notification block for any apprise URL, so alerts reach email, ntfy, Telegram, Matrix, ...

Prefect ships blocks for particular services (Slack, Teams, Discord, Sendgrid, a custom webhook)
but none that takes a plain apprise URL; this one does. Its URL is a ``SecretStr`` (it usually
embeds a password or token) and it is only unwrapped when the block sends.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.notifications import AppriseNotificationBlock


class SbxApprise(AppriseNotificationBlock):
    """Send sbx alerts to any apprise URL: mailto://user:pass@host, ntfy://topic, tgram://...

    Name it in sbx.toml as ``[alerts.NAME] block = "sbx-apprise/BLOCK_NAME"``.
    """

    _block_type_name: ClassVar[str] = "sbx apprise"
    _block_type_slug: ClassVar[str] = "sbx-apprise"
    _description: ClassVar[str] = "Any apprise URL (email, ntfy, Telegram, Matrix, ...)."
