"""Repositories for the repository tests: small chunk, small-file and pack sizes, so a few
hundred KiB exercise chunking and packing."""

from __future__ import annotations

from pathlib import Path

import pytest

from repository.helpers import CHUNK, PACK, SMALL, make_tree
from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage
from sbx.repository.storage.memory import MemoryStorage


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def repo(repo_dir: Path) -> Repository:
    return Repository.open_or_init(
        LocalStorage(repo_dir), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )


@pytest.fixture
def memory_repo() -> Repository:
    return Repository.open_or_init(
        MemoryStorage(), chunk_size=CHUNK, small_file_limit=SMALL, pack_size=PACK
    )


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")
