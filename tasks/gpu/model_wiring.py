"""Where a box sets the model a vLLM service serves: the variables its arguments interpolate.

Upstream vLLM takes its model as arguments (``--model``, ``--served-model-name``,
``--quantization``, ``--max-model-len``: tasks/vllm_args.py), so a swap edits what compose
interpolates into them. Which variable feeds which flag is read from the compose file that
defines the service's ``command`` (its raw text: ``docker compose config`` has already replaced
the variables), and which file holds the variable from how compose reads it: the ``env_file``
of the ``include:`` entry that brought that compose file in (the example: docker-compose.yml
includes services.yml with env/stack.env), else the project's ``.env``. A variable set in the
environment sbx runs in, or in ``.env`` over an include's file, wins over the file a swap would
edit: refused, naming it, before anything changes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from sbx.errors import ModelSwapBadService
from tasks.clients.compose import effective_files, read_dotenv
from tasks.clients.compose_files import load_compose_file
from tasks.status import compose_for
from tasks.vllm_args import MODEL_FLAGS, ServedModel, command_words, flag_values, served_model

# one variable in a word: ${VAR}, ${VAR:?message}, ${VAR:-default}, $VAR
_ONE_VARIABLE = re.compile(r"^(.*?)\$(?:\{([A-Za-z_]\w*)(?:[:?-][^}]*)?\}|([A-Za-z_]\w*))(.*)$")


class FlagVariable(BaseModel):
    """``--flag <prefix>${VARIABLE}<suffix>`` in the raw compose file."""

    model_config = ConfigDict(frozen=True)

    flag: str
    variable: str
    prefix: str = ""
    suffix: str = ""

    def variable_value(self, wanted: str) -> str:
        """What the variable must hold for the flag to read ``wanted``."""
        if not (wanted.startswith(self.prefix) and wanted.endswith(self.suffix)):
            raise ValueError(f"{self.flag} is written '{self.prefix}${{{self.variable}}}"
                             f"{self.suffix}', which cannot read {wanted!r}")  # fmt: skip
        return wanted[len(self.prefix) : len(wanted) - len(self.suffix) or None]


class ModelWiring(BaseModel):
    """Where one service's model settings live, and what they are now."""

    model_config = ConfigDict(frozen=True)

    service: str
    compose_file: Path  # the file whose `command:` interpolates the variables
    env_file: Path  # the file compose takes them from: the one a swap edits
    variables: dict[str, FlagVariable]  # flag -> its variable (flags without one: absent)
    current: ServedModel  # as the resolved compose model passes them now

    def relative_env(self, stack_dir: Path) -> str:
        try:
            return self.env_file.relative_to(stack_dir).as_posix()
        except ValueError:
            return str(self.env_file)


def find_wiring(config: SbxConfig, service: str, model: str = "the new model") -> ModelWiring:
    """The wiring of ``service``; ModelSwapBadService (exit 2) naming what is missing."""
    resolved = compose_for(config).model()
    declared = resolved.services.get(service)
    vllms = sorted(n for n, s in resolved.services.items() if "--model" in s.command)
    if declared is None or "--model" not in declared.command:
        detail = (
            f"no compose service {service!r} passing --model in {config.stack_dir} (those that "
            f"do: {', '.join(vllms) or 'none'}); name one with --service"
        )
        raise ModelSwapBadService(service, model, detail)
    found = _raw_command(config, service)
    if found is None:
        raise ModelSwapBadService(service, model, f"no compose file sets {service}'s command")
    compose_file, env_files, raw = found
    variables = _flag_variables(raw)
    if "--model" not in variables:
        detail = (
            f"{service}'s --model is written out in {compose_file.name}, with no variable a swap "
            "could set: write it as --model ${VARIABLE} and set VARIABLE in env/stack.env "
            "(docs/real-box.md, 'Model swap')"
        )
        raise ModelSwapBadService(service, model, detail)
    env_file = _holder(env_files, variables["--model"].variable)
    if env_file is None:
        detail = (
            f"{variables['--model'].variable} (its --model) is set in none of "
            f"{', '.join(str(p) for p in env_files)}"
        )
        raise ModelSwapBadService(service, model, detail)
    _refuse_shadowed(config, service, model, variables, env_file)
    return ModelWiring(
        service=service,
        compose_file=compose_file,
        env_file=env_file,
        variables=variables,
        current=served_model(declared.command),
    )


def _raw_command(config: SbxConfig, service: str) -> tuple[Path, list[Path], Any] | None:
    """(file, its interpolation files, raw command) of the last compose file setting it."""
    dotenv = config.stack_dir / ".env"
    found = None
    pending = [
        (config.stack_dir / name, [dotenv])
        for name in effective_files(config.stack_dir, config.compose.files)
    ]
    seen: set[Path] = set()
    while pending:
        path, env_files = pending.pop(0)
        path = Path(os.path.normpath(path))
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        raw = load_compose_file(path)
        for entry in _as_list(raw.get("include")):
            spec = entry if isinstance(entry, dict) else {"path": entry}
            named = [path.parent / str(e) for e in _as_list(spec.get("env_file"))]
            for included in _as_list(spec.get("path")):
                # an include with env_file interpolates from it; without, from the project's .env
                pending.append((path.parent / str(included), named or [dotenv]))
        services = raw.get("services")
        defined = services.get(service) if isinstance(services, dict) else None
        if isinstance(defined, dict) and defined.get("command") is not None:
            found = (path, env_files, defined["command"])
    return found


def _flag_variables(raw: Any) -> dict[str, FlagVariable]:
    # a list is taken word for word (a word like ${X:?set in env/stack.env} holds spaces)
    words = [str(w) for w in raw] if isinstance(raw, list) else command_words([str(raw)])
    variables = {}
    for flag, values in flag_values(words).items():
        match = _ONE_VARIABLE.match(values[0]) if values else None
        if match:
            name = match.group(2) or match.group(3)
            variables[flag] = FlagVariable(
                flag=flag, variable=name, prefix=match.group(1), suffix=match.group(4)
            )
    return {f: variables[f] for f in MODEL_FLAGS if f in variables}


def _holder(env_files: list[Path], variable: str) -> Path | None:
    """The env file compose takes ``variable`` from (a later one overrides an earlier one)."""
    holder = None
    for path in env_files:
        if variable in read_dotenv(path):
            holder = path
    return holder


def _refuse_shadowed(
    config: SbxConfig,
    service: str,
    model: str,
    variables: dict[str, FlagVariable],
    env_file: Path,
) -> None:
    dotenv = read_dotenv(config.stack_dir / ".env") if env_file.name != ".env" else {}
    for var in variables.values():
        where = (
            "the environment sbx runs in"
            if var.variable in os.environ
            else ".env (which compose reads before an include's env_file)"
            if var.variable in dotenv
            else None
        )
        if where:
            detail = (
                f"{var.variable} ({service}'s {var.flag}) is set in {where}, which wins over "
                f"{env_file}: remove it there so the swap's edit takes effect"
            )
            raise ModelSwapBadService(service, model, detail)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
