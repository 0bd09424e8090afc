"""sbx's own home (``SBX_HOME``) and the box it was told to look after (``sbx init``).

``sbx init`` names the stack once: it writes ``$SBX_HOME/box.toml`` (``stack = "/srv/stack"``),
and every command without ``--stack`` or ``SBX_STACK_DIR`` acts on that stack, as the
deployments ``sbx serve`` registers do. No Prefect, no SDK: every command reads this first.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from sbx.errors import ConfigError

BOX_FILE_NAME = "box.toml"


def sbx_home() -> Path:
    """sbx's own state directory: SBX_HOME, else $XDG_DATA_HOME/sbx, else ~/.local/share/sbx."""
    if os.environ.get("SBX_HOME"):
        return Path(os.environ["SBX_HOME"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(data_home).expanduser() / "sbx"


def box_file() -> Path:
    return sbx_home() / BOX_FILE_NAME


def named_stack() -> Path | None:
    """The stack ``sbx init`` named, or None when it was never run here."""
    path = box_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path} (written by 'sbx init') cannot be read: {exc}. Run 'sbx init --stack DIR' "
            "again, or remove it to use the default stack."
        ) from exc
    stack = data.get("stack")
    if not isinstance(stack, str) or not stack:
        raise ConfigError(
            f'{path} names no stack (expected stack = "/path/to/stack"). Run \'sbx init '
            "--stack DIR' again, or remove it to use the default stack."
        )
    return Path(stack)


def name_stack(stack: Path) -> Path:
    """Record ``stack`` (absolute) as this box's stack; returns the file written."""
    import tomlkit  # only here: every command reads this module, one in a hundred writes

    path = box_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    document = tomlkit.document()
    document.add(tomlkit.comment('written by "sbx init": commands without --stack act on it'))
    document.add("stack", str(stack))
    tmp.write_text(tomlkit.dumps(document), encoding="utf-8")
    tmp.replace(path)
    return path
