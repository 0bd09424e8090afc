"""Which part each thing a compose project names goes to (tasks/backup/sources.py), read with
the real compose binary (``config`` needs no daemon) from files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.config import load_config
from tasks.backup.sources import covered_below, plan_sources, read_sources
from tasks.clients.compose_files import files_in_use, interpolate

MAIN = """\
include:
  - path: [inc/more.yml]
    env_file: inc/more.env
services:
  webui:
    image: example/webui
    env_file:
      - ${SETTINGS_DIR:-settings}/webui.env
      - path: ../shared/optional.env
        required: false
    volumes:
      - ./data/open-webui:/app/backend/data
      - ./data:/all-data
      - ./config:/etc/webui:ro
      - /srv/chats:/chats
      - open-webui:/app/cache
      - /var/run/docker.sock:/var/run/docker.sock
      - /:/host:ro
      - type: tmpfs
        target: /tmp
  helper:
    extends: {file: base/common.yml, service: base}
volumes:
  open-webui: {}
"""


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "SETTINGS_DIR"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "box"
    for rel, text in {
        "compose.yaml": MAIN,
        "inc/more.yml": "services:\n  more:\n    image: example/more\n",
        "inc/more.env": "",
        "base/common.yml": "services:\n  base:\n    image: example/base\n",
        "conf/webui.env": "",
        ".env": "COMPOSE_PROJECT_NAME=box\nSETTINGS_DIR=conf\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_every_source_goes_to_the_part_that_covers_it_or_by_its_kind(stack: Path) -> None:
    config = load_config(stack)
    sources, problem = read_sources(config)
    assert problem is None
    where = {s.location: (s.kind, s.part, s.stored_as, s.required) for s in sources}
    assert where[str(stack / ".env")] == ("dotenv", "configs", ".env", True)
    assert where[str(stack / "compose.yaml")] == ("compose-file", "configs", "compose.yaml", True)
    assert where[str(stack / "inc/more.yml")][:3] == ("compose-file", "configs", "inc/more.yml")
    assert where[str(stack / "inc/more.env")][:3] == ("env-file", "configs", "inc/more.env")
    assert where[str(stack / "base/common.yml")][1:3] == ("configs", "base/common.yml")
    # ${SETTINGS_DIR} comes from .env, as compose takes it
    assert where[str(stack / "conf/webui.env")][1:3] == ("configs", "conf/webui.env")
    shared = str(stack.parent / "shared" / "optional.env")
    assert where[shared] == ("env-file", "outside", f"outside{shared}", False)
    assert where[str(stack / "data/open-webui")][:3] == ("bind", "open-webui", "data/open-webui")
    assert where[str(stack / "data")][:3] == ("bind", "mounts", "data")
    assert where[str(stack / "config")][:3] == ("bind", "mounts", "config")
    assert where["/srv/chats"][:3] == ("bind", "outside", "outside/srv/chats")
    # a service that writes a mount is stopped for its copy; a read-only one is not
    writers = {s.location: s.writers for s in sources}
    assert writers["/srv/chats"] == ["webui"] and writers[str(stack / "config")] == []
    assert where["box_open-webui"][:3] == ("volume", "volumes", "volumes/box_open-webui")
    runtime = next(s for s in sources if s.location == "/var/run/docker.sock")
    assert runtime.note and not runtime.stored_as
    root = next(s for s in sources if s.location == "/")  # never walked: the whole disk
    assert root.note and "NOT captured" in root.note and not root.stored_as
    assert all(s.kind != "bind" or s.location != "/tmp" for s in sources)  # tmpfs: nothing kept
    # the whole data/ mount leaves the parts below it to them
    assert covered_below(config, "data") == {"models", "qdrant", "open-webui"}


def test_compose_file_from_dotenv_and_the_configured_list(stack: Path) -> None:
    (stack / "other.yml").write_text("services:\n  x:\n    image: example/x\n")
    (stack / ".env").write_text("COMPOSE_FILE=other.yml\n")
    kinds = {r.path.name: r.kind for r in files_in_use(stack, [])}
    assert kinds == {".env": "dotenv", "other.yml": "compose-file"}
    named = {r.path.name for r in files_in_use(stack, ["compose.yaml"])}
    assert {"compose.yaml", "more.yml", "common.yml"} <= named


def test_a_compose_file_compose_cannot_read_is_a_problem_not_silence(stack: Path) -> None:
    (stack / "compose.yaml").write_text("services: [not, a, mapping]\n")
    sources, problem = read_sources(load_config(stack))
    assert sources == [] and problem


def test_a_stack_without_compose_file_has_nothing_to_discover(tmp_path: Path) -> None:
    assert read_sources(load_config(tmp_path)) == ([], None)


def test_interpolation_as_compose_does_it() -> None:
    values = {"A": "a", "EMPTY": ""}
    assert interpolate("${A}/${B:-b}/${EMPTY:-e}/${EMPTY-e}/$A/$$A", values) == "a/b/e//a/$A"


def test_plan_sources_without_files_lists_only_mounts(stack: Path) -> None:
    from tasks.status import compose_for

    config = load_config(stack)
    sources = plan_sources(config, compose_for(config).model(), [])
    assert {s.kind for s in sources} == {"bind", "volume"}
