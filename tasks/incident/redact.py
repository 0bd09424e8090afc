"""One rule for secrets in evidence (#23 finding 8): what an inspect output, a compose config or a
blast-radius report may hold that is a secret, and its replacement, ``<redacted>``.

A value is a secret when it is

- the value of an environment variable (all of them: a container's environment is where secrets
  live, and a bundle needs the names only);
- the argument of a secret flag on a command line (``--api-key sk-…``, ``--api-key=sk-…``: a flag
  named ``api-key``, ``token``, ``password``, ``secret`` or ending ``-key``, ``-token``,
  ``-secret``, ``-password``), or of a ``NAME=value`` argument with a secret name;
- the value of a label with a secret name (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``,
  dots and dashes read as underscores);
- or any text equal to a key value sbx knows (the proxy keys file), wherever it shows: in an
  argument, a label, a URL path a client requested, an address it claimed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from blocks.config import SbxConfig
from tasks.incident.keys import read_keys

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(^|_)(API_?KEY|TOKEN|SECRET|PASSWORD)$|_KEY$|_TOKEN$|_SECRET$|PASSWORD")
_SECRET_FLAG = re.compile(r"^--?([a-z0-9-]*-)?(api-key|key|token|secret|password)$", re.I)
_MIN_VALUE = 8  # a shorter "key" would redact ordinary words


def is_secret_name(name: str) -> bool:
    """``OPENAI_API_KEY``, ``hf_token``, ``com.example.db-password``: a secret's name."""
    last = re.split(r"[./]", name.strip())[-1]
    return bool(_SECRET_NAME.search(last.upper().replace("-", "_")))


class Redactor:
    """Redacts by the rule above; ``values``: the secret values sbx knows (key values)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        given = {v for v in values if len(v) >= _MIN_VALUE}
        given |= {quote(v, safe="") for v in given}  # as it shows in a URL path
        self.values = sorted(given, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text

    def args(self, items: list[Any] | None) -> list[Any] | None:
        """A command line (``Cmd``, ``Entrypoint``, ``Args``, compose ``command``)."""
        if items is None:
            return None
        out: list[Any] = []
        hide_next = False
        for item in items:
            if not isinstance(item, str):
                out.append(self.scrub(item))
                continue
            if hide_next:
                out.append(REDACTED)
                hide_next = False
                continue
            flag, eq, _ = item.partition("=")
            if _SECRET_FLAG.match(flag):
                out.append(f"{flag}={REDACTED}" if eq else item)
                hide_next = not eq
            elif eq and not flag.startswith("-") and is_secret_name(flag):
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(self.text(item))
        return out

    def command(self, value: Any) -> Any:
        """A command given as a list or as one string (compose allows both)."""
        if isinstance(value, str):
            return " ".join(self.args(value.split(" ")) or [])
        return self.args(value) if isinstance(value, list) else self.scrub(value)

    def labels(self, value: Any) -> Any:
        """Labels as a mapping or as ``NAME=value`` items."""
        if isinstance(value, dict):
            return {k: REDACTED if is_secret_name(str(k)) else self.scrub(v)
                    for k, v in value.items()}  # fmt: skip
        if isinstance(value, list):
            return self.env(value)
        return self.scrub(value)

    def env(self, items: Any) -> Any:
        """Environment as ``NAME=value`` items or a mapping: every value replaced."""
        if isinstance(items, dict):
            return dict.fromkeys(items, REDACTED)
        if isinstance(items, list):
            return [f"{str(i).partition('=')[0]}={REDACTED}" if "=" in str(i) else i
                    for i in items]  # fmt: skip
        return items

    def scrub(self, data: Any) -> Any:
        """Any JSON value with every known secret value replaced wherever it shows."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self.scrub(v) for v in data]
        if isinstance(data, dict):
            return {self.text(str(k)): self.scrub(v) for k, v in data.items()}
        return data

    def inspect(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """``docker inspect`` of a container: env, command lines and labels redacted."""
        data = dict(attrs)
        cfg = dict(data.get("Config") or {})
        if "Env" in cfg:
            cfg["Env"] = self.env(cfg["Env"])
        for name in ("Cmd", "Entrypoint"):
            if name in cfg:
                cfg[name] = self.command(cfg[name])
        if "Labels" in cfg:
            cfg["Labels"] = self.labels(cfg["Labels"])
        data["Config"] = cfg
        if "Args" in data:
            data["Args"] = self.command(data["Args"])
        return self.scrub(data)  # type: ignore[no-any-return]

    def compose(self, config: dict[str, Any]) -> dict[str, Any]:
        """The resolved compose model: per service env, command, entrypoint, labels."""
        services = {}
        for name, given in (config.get("services") or {}).items():
            spec = dict(given)
            if "environment" in spec:
                spec["environment"] = self.env(spec["environment"])
            for key in ("command", "entrypoint"):
                if key in spec:
                    spec[key] = self.command(spec[key])
            if "labels" in spec:
                spec["labels"] = self.labels(spec["labels"])
            services[name] = spec
        return self.scrub({**config, "services": services})  # type: ignore[no-any-return]


def key_rule(config: SbxConfig) -> Redactor:
    """The rule, knowing the key values of the proxy keys file."""
    keys = read_keys(config.stack_dir / config.incident.keys_file)
    return Redactor(k.value.get_secret_value() for k in keys)
