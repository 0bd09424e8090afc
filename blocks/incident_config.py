"""The ``[incident]`` table of ``sbx.toml``: where incident steps find keys, logs and allowlists.

The defaults match the example stack (examples/stack): the reverse proxy reads API keys from
``proxy/keys.txt`` (``NAME KEY`` a line) and writes access logs under ``logs/proxy/``; each agent
writes the URLs it fetched to ``logs/agents/<agent>.jsonl`` and reads its allowlist from
``agents/<agent>/allowlist.txt``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class IncidentConfig(BaseModel):
    """Incident response (docs/incident.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys_file: str = Field(
        default="proxy/keys.txt",
        description="API keys file the proxy reads ('NAME KEY' a line), relative to the stack.",
    )
    key_readers: list[str] = Field(
        default_factory=lambda: ["proxy"],
        description="Services restarted after keys are revoked (they read the keys file).",
    )
    proxy_access_logs: list[str] = Field(
        default_factory=lambda: ["logs/proxy/access.log*"],
        description="Globs of the proxy's access logs, rotated files included "
        "(combined or JSON lines).",
    )
    agent_fetch_logs: list[str] = Field(
        default_factory=lambda: ["logs/agents/*.jsonl*"],
        description="Globs of the agents' fetch logs (JSON lines with 'url').",
    )
    agent_allowlists: list[str] = Field(
        default_factory=lambda: ["agents/*/allowlist.txt"],
        description="Globs of the agents' allowlists (one domain a line).",
    )
    known_networks: list[str] = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ],
        description="Client networks expected in the proxy log; a key used from elsewhere is "
        "flagged.",
    )
    stop_agents_on_freeze: bool = Field(
        default=False, description="Also stop agent containers on 'sbx incident freeze'."
    )

    @field_validator("keys_file", "proxy_access_logs", "agent_fetch_logs", "agent_allowlists")
    @classmethod
    def _inside_stack(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            if Path(item).is_absolute() or ".." in Path(item).parts:
                raise ValueError(f"paths relative to the stack, without '..' ({item!r})")
        return value

    @field_validator("known_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"a network such as '10.0.0.0/8' ({item!r})") from None
        return value
