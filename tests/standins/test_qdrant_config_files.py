"""The Qdrant stand-in reads its settings from config files as Qdrant does (src/settings.rs).

config/config, config/$RUN_MODE, config/local (relative to the working directory), then the
--config-path file, then QDRANT__* variables, each over the last; a file that does not parse
stops the start (exit 1, the file named), as Qdrant's main returns Settings::new's error.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .conftest import Standin, StartStandin


def workdir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A working directory holding `files` (path → text), as /qdrant holds config/."""
    cwd = tmp_path / "qdrant"
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    return cwd


def status(qdrant: Standin, key: str | None) -> int:
    headers = {"api-key": key} if key else {}
    return httpx.get(f"{qdrant.url}/collections", headers=headers).status_code


def test_a_key_only_in_the_run_mode_file_is_enforced(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    cwd = workdir(
        tmp_path,
        {
            "config/config.yaml": (
                "storage:\n  storage_path: ./kept/storage  # relative to /qdrant\n"
                "  snapshots_path: ./kept/snapshots\nservice:\n  api_key: base-key\n"
            ),
            "config/production.yaml": "service:\n  api_key: 'prod-key'\n",
            "config/development.yaml": "service: {api_key: dev-key}\n",
        },
    )
    qdrant = start_standin("qdrant", {"RUN_MODE": "production"}, cwd=cwd)
    assert [status(qdrant, key) for key in (None, "base-key", "dev-key")] == [401] * 3
    vectors = {"vectors": {"size": 2, "distance": "Dot"}}
    made = httpx.put(f"{qdrant.url}/collections/c", json=vectors, headers={"api-key": "prod-key"})
    assert made.is_success
    assert (cwd / "kept" / "storage" / "collections" / "c" / "collection.json").is_file()


def test_the_variables_win_over_the_files(start_standin: StartStandin, tmp_path: Path) -> None:
    cwd = workdir(tmp_path, {"config/production.yml": "service:\n  api_key: file-key\n"})
    env = {"RUN_MODE": "production", "QDRANT__SERVICE__API_KEY": "env-key"}
    qdrant = start_standin("qdrant", env, cwd=cwd)
    assert (status(qdrant, "file-key"), status(qdrant, "env-key")) == (401, 200)


def test_the_config_path_file_wins_over_config_dir(
    start_standin: StartStandin, tmp_path: Path
) -> None:
    cwd = workdir(
        tmp_path,
        {
            "config/local.toml": '[service]\napi_key = "local-key"\n',
            "extra.json": json.dumps({"service": {"api_key": "cli-key"}}),
        },
    )
    qdrant = start_standin("qdrant", cwd=cwd, args=("--config-path", str(cwd / "extra.json")))
    assert (status(qdrant, "local-key"), status(qdrant, "cli-key")) == (401, 200)


@pytest.mark.parametrize(
    ("name", "text", "args"),
    [
        ("config/production.yaml", 'service:\n  api_key: "unterminated\n', ()),
        ("config/config.yaml", "service:\n  api_key: a\n    host: b\n", ()),
        ("mine.json", '{"service": {"api_key": ', ("--config-path", "mine.json")),
        ("config/local.toml", "[service\n", ()),
    ],
    ids=["yaml-quote", "yaml-indent", "json", "toml"],
)
def test_a_file_that_does_not_parse_stops_the_start(
    start_standin: StartStandin, tmp_path: Path, name: str, text: str, args: tuple[str, ...]
) -> None:
    cwd = workdir(tmp_path, {name: text})
    qdrant = start_standin("qdrant", {"RUN_MODE": "production"}, cwd=cwd, args=args, wait=False)
    assert qdrant.proc.wait(10) == 1
    assert f"in {name}" in qdrant.output()
