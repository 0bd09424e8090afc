"""age keys for the off-box tests: made fresh per test, written as files the way age-keygen does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyrage


@dataclass(frozen=True)
class AgeKey:
    identity: pyrage.x25519.Identity
    file: Path

    @property
    def recipient(self) -> str:
        return str(self.identity.to_public())


def make_key(folder: Path, name: str = "key.txt") -> AgeKey:
    identity = pyrage.x25519.Identity.generate()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        f"# created: by the sbx tests\n# public key: {identity.to_public()}\n{identity}\n"
    )
    path.chmod(0o600)
    return AgeKey(identity, path)
