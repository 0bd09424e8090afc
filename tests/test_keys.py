"""Keys found where the box keeps them (tasks/keys.py, issue 19), and kept out of every dump."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.config import load_config
from tasks.clients.compose import ComposeCli, ComposeMount, ComposeService
from tasks.keys import NO_KEYS, ServiceKeys, read_keys, service_keys

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stack"


def svc(env: dict[str, str] | None = None, command: list[str] | None = None) -> ComposeService:
    return ComposeService(
        name="s",
        image=None,
        depends_on=[],
        published_ports=[],
        environment=env or {},
        command=command or [],
    )


def secret(keys: ServiceKeys) -> tuple[str | None, str | None]:
    return (
        keys.api_key.get_secret_value() if keys.api_key else None,
        keys.read_only_key.get_secret_value() if keys.read_only_key else None,
    )


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (svc({"QDRANT__SERVICE__API_KEY": "q"}), ("q", None)),
        (svc({"QDRANT__SERVICE__READ_ONLY_API_KEY": "r"}), (None, "r")),
        (svc({"QDRANT__SERVICE__API_KEY": "", "QDRANT__SERVICE__READ_ONLY_API_KEY": ""}), None),
        (svc({"VLLM_API_KEY": "v"}), ("v", None)),
        (svc(command=["--model", "m", "--api-key", "a", "--port", "8000"]), ("a", None)),
        (svc(command=["--api-key=b"]), ("b", None)),
        (svc(command=["sh", "-c", "vllm serve m --api-key 'c d' --port 1"]), ("c d", None)),
        (svc({"VLLM_API_KEY": "env"}, ["--api-key", "arg"]), ("env", None)),  # vLLM 0.6's order
        (svc({"MODEL": "m"}, ["--api-key"]), None),  # no value: nothing to send
    ],
)
def test_keys_come_from_environment_and_command(
    service: ComposeService, expected: tuple[str | None, str | None] | None
) -> None:
    keys = service_keys(service)
    assert (keys == NO_KEYS) if expected is None else secret(keys) == expected
    assert keys.for_reading == (keys.api_key or keys.read_only_key)


def test_the_example_compose_file_names_its_keys(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(EXAMPLE, stack, ignore=shutil.ignore_patterns("images", "data", ".sbx"))
    config = load_config(stack)
    model = ComposeCli(stack).model()
    keys = read_keys(config, model)
    assert {name: secret(k) for name, k in keys.items()} == {
        "qdrant": ("example-qdrant-key-change-me", None),
        "worker": ("example-worker-key-change-me", None),
        "watchdog": ("example-watchdog-key-change-me", None),
    }
    # the compose model holds what the keys came from, and never shows it
    worker = model.services["worker"]
    assert "VLLM_API_KEY" not in worker.environment  # --api-key, interpolated from env/stack.env
    assert worker.command[worker.command.index("--api-key") + 1] == "example-worker-key-change-me"
    for shown in (repr(model), model.model_dump_json(), str(model.model_dump())):
        assert "change-me" not in shown


def test_statuses_and_targets_carry_keys_without_showing_them() -> None:
    from tasks.health.model import ServiceTarget
    from tasks.status import ServiceStatus

    keys = ServiceKeys(api_key=SecretStr("planted-key-1"), read_only_key=SecretStr("ro-2"))
    config = load_config(EXAMPLE).services["qdrant"]
    target = ServiceTarget(
        name="qdrant", config=config, in_compose=True, depends_on=[], container=None, url=None,
        credentials=keys,
    )  # fmt: skip
    status = ServiceStatus(
        name="qdrant", compose_service="qdrant", kind="qdrant", required=True, state="running",
        health=None, container=None, image=None, digest=None, ports=[], url=None, probe=None,
        problem=None, credentials=keys,
    )  # fmt: skip
    for model in (target, status):
        assert model.credentials.api_key is not None
        for shown in (repr(model), str(model), model.model_dump_json(), str(model.model_dump())):
            assert "planted" not in shown and "ro-2" not in shown


def test_the_secrets_block_key_wins_inside_a_flow_run(prefect_server: str, run_id: str) -> None:
    """A key the compose file does not show goes in the sbx-secrets block (api_keys); it is read
    in flow runs, where the Prefect API is at hand, and not by listings outside one."""
    from prefect import flow

    from blocks.box import SbxSecrets
    from blocks.config import SbxConfig

    name = f"keys-{run_id}"
    SbxSecrets(api_keys={"qdrant": SecretStr("from-the-block")}).save(name, overwrite=True)
    config = SbxConfig(stack_dir=EXAMPLE, offbox={"secrets_block": name})  # type: ignore[arg-type]
    model = ComposeCli(EXAMPLE).model()

    @flow
    def read_in_a_flow() -> dict[str, ServiceKeys]:
        return read_keys(config, model)

    inside = read_in_a_flow()
    assert secret(inside["qdrant"]) == ("from-the-block", None)
    assert secret(inside["worker"]) == ("example-worker-key-change-me", None)
    outside = read_keys(config, model)
    assert secret(outside["qdrant"]) == ("example-qdrant-key-change-me", None)


def qdrant_svc(
    host: Path,
    target: str = "/qdrant/config",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> ComposeService:
    mount = ComposeMount(type="bind", source=str(host), target=target)
    return ComposeService(
        name="qdrant", image="qdrant/qdrant", depends_on=[], published_ports=[],
        mounts=[mount], environment=env or {}, command=command or [],
    )  # fmt: skip


def test_qdrant_keys_come_from_its_mounted_config_files_merged_as_upstream(
    tmp_path: Path,
) -> None:
    """Qdrant's settings.rs order: config/config, config/<RUN_MODE> (production in the image),
    config/local, --config-path, then QDRANT__ variables; yaml, json or toml."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text("service:\n  api_key: from-config\n")
    assert secret(service_keys(qdrant_svc(conf))) == ("from-config", None)
    (conf / "production.json").write_text('{"service": {"read_only_api_key": "ro-prod"}}')
    assert secret(service_keys(qdrant_svc(conf))) == ("from-config", "ro-prod")
    # another RUN_MODE reads another file; development.yaml here is not it
    (conf / "development.yaml").write_text("service: {api_key: dev}\n")
    assert secret(service_keys(qdrant_svc(conf, env={"RUN_MODE": "development"}))) == (
        "dev", None,
    )  # fmt: skip
    (conf / "local.toml").write_text('[service]\napi_key = "from-local"\n')
    assert secret(service_keys(qdrant_svc(conf))) == ("from-local", "ro-prod")
    # --config-path, relative to /qdrant, through a mount of the file itself
    custom = tmp_path / "custom.yaml"
    custom.write_text("service:\n  api_key: custom\n")
    extra = ComposeMount(type="bind", source=str(custom), target="/qdrant/my.yaml")
    service = qdrant_svc(conf, command=["./qdrant", "--config-path", "my.yaml"])
    service = service.model_copy(update={"mounts": [*service.mounts, extra]})
    assert secret(service_keys(service)) == ("custom", "ro-prod")
    # the variables win over every file
    env = {"QDRANT__SERVICE__API_KEY": "from-env"}
    assert secret(service_keys(qdrant_svc(conf, env=env))) == ("from-env", "ro-prod")
    # a file that does not parse, or a mount of something else, adds nothing
    (conf / "local.toml").write_text("[service\n")
    assert secret(service_keys(qdrant_svc(conf))) == ("from-config", "ro-prod")
    assert service_keys(qdrant_svc(conf, target="/srv/other")) == NO_KEYS
