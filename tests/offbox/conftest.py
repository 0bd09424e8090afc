"""Fixtures of the off-box tests: the repository tests' small repositories and source tree."""

from __future__ import annotations

from repository.conftest import memory_repo, repo, repo_dir, src

__all__ = ["memory_repo", "repo", "repo_dir", "src"]
