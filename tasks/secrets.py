"""The one door to a box's ``sbx-secrets`` block: which block a box reads, and reading it.

On a single box the block is the one ``offbox.secrets_block`` names; none named, none is read.
In a fleet (``SBX_BOX``, which ``sbx serve --box NAME`` sets for every run of its worker) all
boxes share one Prefect server and so one block store, and each box's secrets live in its own
block, ``sbx-secrets-<box>``: its S3 keys, age identity, alert webhook and service API keys.
A box reads that block and no other. Naming another box's block (or any other one) in
``offbox.secrets_block`` is refused, so a copied sbx.toml cannot make box A decrypt with B's
identity or write with B's S3 keys. The box's own block may be missing (a box without
secrets); a block named explicitly must exist.

Prefect's open-source server has no per-block permissions: any client of the server can read
any block. What keeps boxes apart is this rule in sbx's code, plus one API key per box where
the server sits behind an authenticating proxy (docs/fleet.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks.config import SbxConfig
from sbx.errors import ConfigError

if TYPE_CHECKING:
    from blocks.box import SbxSecrets

BLOCK_PREFIX = "sbx-secrets"


def box_block_name(box: str) -> str:
    """``sbx-secrets-<box>``: the block that holds one fleet box's secrets."""
    return f"{BLOCK_PREFIX}-{box}"


def secrets_block_name(config: SbxConfig) -> tuple[str | None, bool]:
    """The block this box reads, and whether it must exist (it was named explicitly)."""
    named = config.offbox.secrets_block
    if not config.box:
        return named, named is not None
    own = box_block_name(config.box)
    if named is not None and named != own:
        raise ConfigError(
            f"offbox.secrets_block names {named!r}, but this box is {config.box!r} of a fleet "
            f"(SBX_BOX): it reads only its own block, {own!r}, so one box never holds another's "
            f"S3 or age keys. Put this box's secrets in {own!r} and remove offbox.secrets_block "
            "(or set it to that name)."
        )
    return own, named is not None


def load_secrets(config: SbxConfig) -> SbxSecrets | None:
    """This box's secrets block, or None when no block applies (or the fleet box has none)."""
    name, required = secrets_block_name(config)
    if name is None:
        return None
    from prefect.exceptions import ObjectNotFound

    from blocks.box import SbxSecrets

    try:
        secrets = SbxSecrets.load(name)
    except ValueError as exc:
        if not required and isinstance(exc.__cause__, ObjectNotFound):
            return None  # a fleet box without secrets of its own
        raise _cannot_load(name, exc) from None
    except RuntimeError as exc:
        raise _cannot_load(name, exc) from None
    return secrets if isinstance(secrets, SbxSecrets) else None


def _cannot_load(name: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"Cannot load the sbx-secrets block {name!r} ({type(exc).__name__}). Create it "
        "('sbx setup', then the Prefect UI) or fix offbox.secrets_block."
    )
