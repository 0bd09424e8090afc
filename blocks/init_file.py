"""``sbx init`` writes a few keys of a stack's ``sbx.toml``, keeping everything else as it is.

tomlkit edits the document in place: the operator's comments, order and other keys stay.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from sbx.errors import ConfigError


def with_keys(text: str | None, updates: dict[str, dict[str, Any]], where: str) -> str:
    """``text`` (a TOML document, or None for a new file) with ``[table] key = value`` set for
    every table and key of ``updates``."""
    try:
        document = tomlkit.parse(text) if text else tomlkit.document()
    except TOMLKitError as exc:
        raise ConfigError(
            f"{where} is not valid TOML ({exc}). Fix it (or move it away) and run 'sbx init' "
            "again. Nothing was changed."
        ) from exc
    if not text:
        document.add(tomlkit.comment("sbx configuration of this stack (docs/configuration.md)"))
    for table_name, keys in updates.items():
        table = document.get(table_name)
        if table is None:
            table = tomlkit.table()
            document.add(table_name, table)
        elif not isinstance(table, dict):
            raise ConfigError(
                f"{where}: {table_name!r} is not a table. Fix it and run 'sbx init' again. "
                "Nothing was changed."
            )
        for key, value in keys.items():
            table[key] = value
    return tomlkit.dumps(document)
