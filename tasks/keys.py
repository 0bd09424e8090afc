"""The API keys a box's services expect, found where the box itself keeps them.

A real box guards its APIs: Qdrant answers 401 to all but ``/``, ``/healthz``, ``/readyz`` and
``/livez`` when ``QDRANT__SERVICE__API_KEY`` is set (``QDRANT__SERVICE__READ_ONLY_API_KEY``
grants reads only); vLLM answers 401 on ``/v1/*`` when started with ``--api-key`` or
``VLLM_API_KEY``. The keys are read from the compose model (``docker compose config``: each
service's environment with its ``env_file`` values resolved, and its command), so zero
configuration works on a keyed box; so are the config files a Qdrant container mounts
(keys_files.py). A key none of these show goes in the box's sbx-secrets block
(tasks/secrets.py), field ``api_keys`` (compose service name → key), which wins. Keys stay
``SecretStr`` from here on and are unwrapped only by the clients in ``tasks/clients/``; models
that carry them exclude them from every dump.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from blocks.config import SbxConfig
from tasks.clients.compose import ComposeModel, ComposeService
from tasks.keys_files import qdrant_file_keys
from tasks.secrets import load_secrets, secrets_block_name
from tasks.vllm_args import command_words

QDRANT_KEY = "QDRANT__SERVICE__API_KEY"
QDRANT_READ_ONLY_KEY = "QDRANT__SERVICE__READ_ONLY_API_KEY"
VLLM_KEY = "VLLM_API_KEY"
VLLM_ARGUMENT = "--api-key"
QDRANT_CONFIG_ARGUMENT = "--config-path"


class ServiceKeys(BaseModel):
    """One service's keys: the full one, and a read-only one where the service has such."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = None
    read_only_key: SecretStr | None = None

    @property
    def for_reading(self) -> SecretStr | None:
        """The key for a call that changes nothing: the full one, else the read-only one."""
        return self.api_key or self.read_only_key


NO_KEYS = ServiceKeys()


def service_keys(service: ComposeService) -> ServiceKeys:
    """The keys one compose service is started with (none: its API is open)."""
    env = service.environment
    # Qdrant's variables override its config files (keys_files.py)
    files = qdrant_file_keys(service, _argument(service.command, QDRANT_CONFIG_ARGUMENT))
    # vLLM 0.6 reads VLLM_API_KEY before --api-key (`envs.VLLM_API_KEY or args.api_key`)
    key = (
        env.get(QDRANT_KEY)
        or files.get("api_key")
        or env.get(VLLM_KEY)
        or _argument(service.command, VLLM_ARGUMENT)
    )
    read_only = env.get(QDRANT_READ_ONLY_KEY) or files.get("read_only_api_key")
    # upstream treats an empty key as unset
    return ServiceKeys(
        api_key=SecretStr(key) if key else None,
        read_only_key=SecretStr(read_only) if read_only else None,
    )


def _argument(command: list[str], name: str) -> str | None:
    """``--name VALUE`` or ``--name=VALUE`` in a command, also inside ``sh -c "…"``."""
    words = command_words(command)
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def read_keys(config: SbxConfig, model: ComposeModel) -> dict[str, ServiceKeys]:
    """Keys by compose service name: the compose model's, then the sbx-secrets block's."""
    keys = {name: service_keys(svc) for name, svc in model.services.items()}
    for name, key in block_keys(config).items():
        keys[name] = ServiceKeys(api_key=key, read_only_key=keys.get(name, NO_KEYS).read_only_key)
    return {name: k for name, k in keys.items() if k != NO_KEYS}


def block_keys(config: SbxConfig) -> Mapping[str, SecretStr]:
    """``api_keys`` of the sbx-secrets block, when one is configured and a flow runs.

    Outside a flow run (``sbx status``) no block is loaded: that listing answers without a
    Prefect API and probes only the open health paths."""
    if secrets_block_name(config)[0] is None:
        return {}
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return {}
    secrets = load_secrets(config)
    return dict(secrets.api_keys) if secrets is not None else {}
