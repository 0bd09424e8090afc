"""Configuration: zero-config defaults, sbx.toml merging, SBX_* precedence, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.config import ServiceKind, load_config
from sbx.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SBX_"):
            monkeypatch.delenv(key)


def write(stack: Path, text: str) -> None:
    stack.mkdir(parents=True, exist_ok=True)
    (stack / "sbx.toml").write_text(text, encoding="utf-8")


def test_zero_configuration_describes_the_design_layout(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.stack_dir == tmp_path
    assert set(config.services) == {
        "worker",
        "watchdog",
        "qdrant",
        "open-webui",
        "proxy",
        "internet-research",
    }
    assert not config.services["internet-research"].required
    assert config.services["qdrant"].kind is ServiceKind.QDRANT
    assert config.services["qdrant"].port == 6333
    assert config.services["proxy"].exposure and not config.services["proxy"].required
    assert set(config.parts) == {
        "configs",
        "models",
        "qdrant",
        "open-webui",
        "logs",
        "notes",
        "agent-configs",
        "mounts",
        "outside",
        "volumes",
    }
    assert config.parts["open-webui"].method == "sqlite-online"


def test_default_stack_dir_is_the_design_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config().stack_dir == tmp_path / "sealed-box-ai" / "stack"


def test_toml_merges_per_field_over_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[services.worker]\nurl = "http://127.0.0.1:9000/"\n'
        '[services.agent]\ncompose_service = "intel-sync"\nkind = "agent"\n'
        '[parts.notes]\nexclude = ["*.tmp"]\n',
    )
    config = load_config(tmp_path)
    worker = config.services["worker"]
    assert worker.url == "http://127.0.0.1:9000"  # trailing slash dropped
    assert worker.compose_service == "worker" and worker.kind is ServiceKind.OPENAI
    assert config.services["agent"].compose_service == "intel-sync"
    assert config.parts["notes"].exclude == ["*.tmp"]
    assert config.parts["notes"].paths == ["notes"]


def test_environment_beats_file_and_stack_flag_beats_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[repository]\nlocation = "/from/file"\n[services.worker]\nport = 8001\n')
    monkeypatch.setenv("SBX_REPOSITORY__LOCATION", "/from/env")
    monkeypatch.setenv("SBX_SERVICES__WATCHDOG__URL", "http://127.0.0.1:8100")
    monkeypatch.setenv("SBX_AGE_RECIPIENTS", "age1aaa, age1bbb,")
    monkeypatch.setenv("SBX_STACK_DIR", str(tmp_path / "elsewhere"))
    config = load_config(tmp_path)
    assert config.repository.location == "/from/env"
    assert config.services["worker"].port == 8001
    assert config.services["watchdog"].url == "http://127.0.0.1:8100"
    assert config.services["watchdog"].compose_service == "watchdog"
    assert config.age_recipients == ["age1aaa", "age1bbb"]
    assert config.stack_dir == tmp_path


def test_stack_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "[retention]\nkeep_last = 3\n")
    monkeypatch.setenv("SBX_STACK_DIR", str(tmp_path))
    config = load_config()
    assert config.stack_dir == tmp_path
    assert config.retention.keep_last == 3


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ("[services.qdrant]\nport = 99999\n", ["services.qdrant.port", "99999", "65535"]),
        (
            '[services.worker]\nurl = "localhost:8000"\n',
            ["services.worker.url", "'localhost:8000'", "http:// or https:// URL"],
        ),
        ('[repository]\nlocaton = "/x"\n', ["repository.locaton", "no such key"]),
        ('[parts.notes]\npaths = ["../etc"]\n', ["parts.notes.paths", "without '..'"]),
        ('[offbox]\nurl = "https://bucket"\n', ["offbox.url", "s3://bucket/prefix"]),
        ("[retention]\nkeep_daily = -1\n", ["retention.keep_daily", "-1"]),
    ],
)
def test_bad_values_name_key_value_and_expectation(
    tmp_path: Path, toml: str, fragments: list[str]
) -> None:
    write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "sbx.toml") in message
    for fragment in fragments:
        assert fragment in message
    assert caught.value.exit_code == 2


def test_bad_environment_value_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_PROBE_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match=r"probe_timeout_s = 'soon'.*SBX_"):
        load_config(tmp_path)


def test_invalid_toml_and_missing_config_file(tmp_path: Path) -> None:
    write(tmp_path, "[services\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"does not exist\. Check --config"):
        load_config(tmp_path, tmp_path / "nope.toml")


def test_explicit_config_file_is_used(tmp_path: Path) -> None:
    other = tmp_path / "conf" / "box.toml"
    other.parent.mkdir()
    other.write_text('[compose]\nproject = "box"\n', encoding="utf-8")
    assert load_config(tmp_path, other).compose.project == "box"


def test_disabled_services_and_parts_drop_out(tmp_path: Path) -> None:
    write(tmp_path, "[services.watchdog]\nenabled = false\n[parts.logs]\nenabled = false\n")
    config = load_config(tmp_path)
    assert "watchdog" not in config.enabled_services()
    assert "logs" not in config.enabled_parts()
