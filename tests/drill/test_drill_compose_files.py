"""The drill starts the restored stack with the compose files compose itself would read there:
sbx.toml's list, else COMPOSE_FILE (the environment, then the restored .env), else the default
file and its override — an override named only in .env (compose.standins.yml, say) included."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.config import load_config
from sbx.errors import StackError
from tasks.drill.project import compose_files


def test_compose_file_in_the_restored_env_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    monkeypatch.delenv("COMPOSE_PATH_SEPARATOR", raising=False)
    for name in ("docker-compose.yml", "compose.standins.yml", "compose.override.yml"):
        (tmp_path / name).write_text("services: {}\n")
    config = load_config(tmp_path)
    # no COMPOSE_FILE: the default file and its override
    assert compose_files(config, tmp_path) == [
        str(tmp_path / "docker-compose.yml"),
        str(tmp_path / "compose.override.yml"),
    ]
    (tmp_path / ".env").write_text("COMPOSE_FILE=docker-compose.yml:compose.standins.yml\n")
    assert compose_files(config, tmp_path) == [
        str(tmp_path / "docker-compose.yml"),
        str(tmp_path / "compose.standins.yml"),
    ]
    # a file .env names that the snapshot lacks: said, not started without it
    (tmp_path / "compose.standins.yml").unlink()
    with pytest.raises(StackError, match=r"compose\.standins\.yml"):
        compose_files(config, tmp_path)
