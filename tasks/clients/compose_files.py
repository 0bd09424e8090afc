"""The files a compose project reads besides its services' data: compose files, ``.env``, and
every ``env_file:``.

``docker compose config`` resolves them away (``env_file:`` becomes ``environment:``, ``include:``
and ``extends:`` are merged in), so they are read from the compose files themselves: the files
in use (``-f`` list, ``COMPOSE_FILE``, or the default name and its override: see
:func:`tasks.clients.compose.effective_files`), then, recursively, each file's ``include:`` and
``extends: file:``, and every service's ``env_file:`` — each relative to the file that names it,
with ``${VAR}`` / ``${VAR:-default}`` taken from the environment and the stack's ``.env`` as
compose does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from sbx.errors import StackError
from tasks.clients.compose import effective_files, read_dotenv

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


class ComposeFileRef(BaseModel):
    """A file compose reads: what names it, where it is, whether compose requires it."""

    model_config = ConfigDict(frozen=True)

    kind: str  # compose-file | dotenv | env-file
    path: Path  # absolute
    origin: str  # who names it, for the report ("service app: env_file", "include: in x.yml")
    required: bool = True


def files_in_use(stack_dir: Path, configured: list[str]) -> list[ComposeFileRef]:
    """Every compose file, ``.env`` and ``env_file:`` the project in ``stack_dir`` reads."""
    dotenv = stack_dir / ".env"
    values = {**read_dotenv(dotenv), **os.environ}
    found: dict[Path, ComposeFileRef] = {}
    if dotenv.exists() or dotenv.is_symlink():
        found[dotenv] = ComposeFileRef(kind="dotenv", path=dotenv, origin="compose's .env")
    pending = [
        ComposeFileRef(kind="compose-file", path=stack_dir / name, origin="compose file in use")
        for name in effective_files(stack_dir, configured)
    ]
    while pending:
        ref = pending.pop(0)
        path = Path(os.path.normpath(ref.path))
        if path in found:
            continue
        found[path] = ref.model_copy(update={"path": path})
        if ref.kind == "compose-file" and path.is_file():
            pending += _named_by(path, values)
    return list(found.values())


class _ComposeLoader(yaml.SafeLoader):
    """Safe YAML plus compose's merge tags (``!reset``, ``!override``), read as plain values."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.ScalarNode)  # the three kinds of node YAML has
    return loader.construct_scalar(node) or None


_ComposeLoader.add_multi_constructor("!", _untagged)


def load_compose_file(compose_file: Path) -> dict[str, Any]:
    """A compose file's raw YAML (variables not interpolated); {} when it is no mapping."""
    try:
        text = compose_file.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=_ComposeLoader) or {}  # noqa: S506  # a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StackError(
            f"Cannot read the compose file {compose_file} ({exc}). Fix it and check with "
            "'docker compose config'."
        ) from exc
    return raw if isinstance(raw, dict) else {}


def _named_by(compose_file: Path, values: dict[str, str]) -> list[ComposeFileRef]:
    raw = load_compose_file(compose_file)
    here = compose_file.parent
    refs = []
    for entry in _as_list(raw.get("include")):
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for name in _as_list(paths):
            refs.append(_ref("compose-file", here, name, values, f"include: in {compose_file}"))
        for name in _as_list(entry.get("env_file") if isinstance(entry, dict) else None):
            refs.append(_ref("env-file", here, name, values, f"include: in {compose_file}"))
    for service, spec in (raw.get("services") or {}).items():
        if not isinstance(spec, dict):
            continue
        extends = spec.get("extends")
        if isinstance(extends, dict) and extends.get("file"):
            origin = f"service {service}: extends in {compose_file}"
            refs.append(_ref("compose-file", here, extends["file"], values, origin))
        for item in _as_list(spec.get("env_file")):
            name = item.get("path") if isinstance(item, dict) else item
            required = item.get("required", True) if isinstance(item, dict) else True
            origin = f"service {service}: env_file in {compose_file.name}"
            refs.append(_ref("env-file", here, name, values, origin, required=bool(required)))
    return refs


def _ref(
    kind: str, here: Path, name: Any, values: dict[str, str], origin: str, *, required: bool = True
) -> ComposeFileRef:
    path = Path(interpolate(str(name), values)).expanduser()
    return ComposeFileRef(kind=kind, path=here / path, origin=origin, required=required)


def interpolate(text: str, values: dict[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$VAR`` as compose reads them."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        op, default = match.group(2), match.group(3) or ""
        value = values.get(name)
        if op == ":-" and not value:
            return default
        if op == "-" and value is None:
            return default
        return value or ""

    return _VARIABLE.sub(one, text.replace("$$", "\0")).replace("\0", "$")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
