"""Importing Prefect for a command's flow run without import-time work that the run never uses.

``import prefect`` runs ~1,300 modules, and some of them do work at import that an ``sbx``
command's flow run never needs. CPU of one ``sbx verify`` on the 2-core VM:

- ``prefect.blocks`` imports its notification and webhook blocks to register them: ten block
  classes, each hashing its JSON schema as it is created, and the webhook module builds four
  HTTP transports, two of them loading the CA bundle (60-130 ms). They run on first use instead:
  sending an alert imports from them (tasks/clients/notify.py), which runs them and so
  registers their block types before ``Block.load``.
- ``jsonschema`` (deployment parameter schemas) and ``coolname`` (generated run names; sbx names
  its runs) are imported at the top of Prefect modules that use them only inside functions:
  they run on first use too (40-60 ms).
- httpx imports its own command-line client (``httpx._main``: click, pygments' lexer table)
  whenever those are installed, and Typer and Rich install them: marked absent, so
  ``httpx.main`` is httpx's stub saying so (60-85 ms). httpcore imports the HTTP/2 protocol
  package ``h2`` whether or not a client asks for HTTP/2 (Prefect's does not by default): its
  modules run on first use (~20 ms). Both before httpx's first import (sbx.cli).
- Prefect's logging set-up renders all ~290 settings (every settings group dumped again at
  each level of the tree) to fill the three ``${PREFECT_…_LEVEL}`` placeholders of its template
  (85-100 ms): here the template gets the settings it names, rendered the same way.

Nothing is skipped, only moved: a deferred module that is used runs then, in full.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import string
import sys
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.settings import Settings

#: imported eagerly by Prefect, used by an sbx command's flow run rarely or never
DEFERRED = ("prefect.blocks.notifications", "prefect.blocks.webhook", "jsonschema", "coolname")
#: what httpcore imports of h2 (``import h2.config`` …): the package and those modules
DEFERRED_H2 = ("h2", "h2.config", "h2.connection", "h2.events", "h2.exceptions", "h2.settings")


def before_httpx_import() -> None:
    """Before httpx's first import: no command-line client; HTTP/2 loaded when used."""
    if "httpx" in sys.modules or "httpcore" in sys.modules:
        return
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # "absent"
    for name in DEFERRED_H2:
        _defer(name)


def prepare_prefect_import() -> None:
    """Before ``import prefect``: defer the modules above; fill logging's template lazily."""
    if "prefect" in sys.modules:
        return
    before_httpx_import()
    for name in DEFERRED:
        _defer(name)
    import prefect.logging.configuration as logging_configuration

    logging_configuration.load_logging_config = _load_logging_config


def ran(name: str) -> bool:
    """Whether module ``name`` has run (a deferred module that nothing used has not)."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, _RunsOnFirstUse)


def _defer(name: str) -> None:
    """Put ``name`` in ``sys.modules`` as a module whose code runs on first use.

    Not ``importlib.util.LazyLoader``: on Python 3.11 a later ``import`` of the module reads its
    ``__spec__``, and that runs it. Here ``__spec__``, ``__path__`` and the other attributes
    the import system reads are there from the start; the first other attribute asked for runs
    the module's code into this same module object. The spec is found without importing the
    parent package (``prefect.blocks`` imports the very modules deferred here).
    """
    if name in sys.modules:
        return
    top, _, rest = name.partition(".")
    search: list[str] | None = None
    if rest:
        package = importlib.util.find_spec(top)  # a top-level spec: imports nothing
        if package is None or not package.submodule_search_locations:
            return
        parent = rest.rpartition(".")[0]
        root = Path(package.submodule_search_locations[0])
        search = [str(root.joinpath(*parent.split(".")) if parent else root)]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _RunsOnFirstUse
    sys.modules[name] = module
    if rest and (parent_module := sys.modules.get(name.rpartition(".")[0])) is not None:
        # what the import system does for a submodule it runs: ``h2.config`` is reached so
        setattr(parent_module, name.rpartition(".")[2], module)


class _RunsOnFirstUse(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        # called only for an attribute the module does not have yet: run its code, then look
        self.__class__ = types.ModuleType  # type: ignore[assignment]
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)
        return getattr(self, attr)


class _SettingsByName:
    """What ``settings.to_environment_variables(include_aliases=True)[name]`` gives, rendering
    only the setting asked for: ``PREFECT_SERVER_LOGGING_LEVEL`` alone, not the ~190 server
    settings around it. A setting without a value falls back to the full rendering, which then
    also decides a name that is no setting."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._found: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._found:
            from prefect.settings.base import _to_environment_variable_value
            from prefect.settings.legacy import _get_settings_fields

            value = None
            field = _get_settings_fields(type(self._settings)).get(name)
            if field is not None:
                *path, key = field.accessor.split(".")
                group: Any = self._settings
                for step in path:
                    group = getattr(group, step)
                dumped = group.model_dump(
                    mode="json", include={key}, context={"include_secrets": True}
                )
                value = dumped.get(key)
            if value is not None:
                self._found[name] = _to_environment_variable_value(value)
            else:
                self._found.update(self._settings.to_environment_variables(include_aliases=True))
        return self._found[name]


def _load_logging_config(path: Path) -> dict[str, Any]:
    """Prefect 3.9's ``prefect.logging.configuration.load_logging_config``, with the template
    filled from :class:`_SettingsByName` (and parsed by libyaml when PyYAML has it)."""
    import yaml
    from prefect.logging.configuration import to_envvar
    from prefect.settings import get_current_settings
    from prefect.utilities.collections import dict_to_flatdict, flatdict_to_dict

    template = string.Template(path.read_text())
    filled = template.substitute(_SettingsByName(get_current_settings()))  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        config = yaml.load(filled, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    flat_config: dict[tuple[str, ...], Any] = dict_to_flatdict(config)
    for key_tup, default in flat_config.items():
        # an override from the environment, as Prefect reads it
        env_val = os.environ.get(to_envvar("PREFECT_LOGGING_" + "_".join(key_tup)).upper())
        if env_val:
            flat_config[key_tup] = env_val.split(",") if isinstance(default, list) else env_val
    return flatdict_to_dict(flat_config)
