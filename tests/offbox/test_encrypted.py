"""EncryptedStorage: the storage contract over memory, names and bodies that reveal nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest

from offbox.keys import make_key
from sbx.errors import AgeKeyError, CorruptObject, KeyExists, ManifestInvalid
from sbx.repository.encrypted import (
    EncryptedStorage,
    parse_identities,
    parse_recipients,
    read_marker,
)
from sbx.repository.format import REPOSITORY_FILE, RepositoryInfo
from sbx.repository.storage import Storage
from sbx.repository.storage.contract import StorageContract
from sbx.repository.storage.memory import MemoryStorage

INFO = RepositoryInfo(id="5f0c8a51-0000-4000-8000-000000000001", created_at=datetime.now(UTC))
HASH = "ab" + "12" * 31


def _create(inner: Storage, identity: pyrage.x25519.Identity) -> EncryptedStorage:
    return EncryptedStorage.create(
        inner, INFO, recipients=[identity.to_public()], identities=[identity]
    )


class _WithoutRepositoryFile(EncryptedStorage):
    """The contract expects a fresh storage to list nothing: hide the repository file."""

    def list(self, prefix: str = "") -> Iterator[str]:
        return (k for k in super().list(prefix) if k != REPOSITORY_FILE)


class TestEncryptedStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        identity = pyrage.x25519.Identity.generate()
        inner = MemoryStorage()
        _create(inner, identity)
        yield _WithoutRepositoryFile.unlock(
            inner, recipients=[identity.to_public()], identities=[identity]
        )


def test_names_and_bodies_reveal_nothing() -> None:
    identity = pyrage.x25519.Identity.generate()
    inner = MemoryStorage()
    store = _create(inner, identity)
    store.put(f"objects/ab/{HASH}", b"plaintext-canary " * 100)
    store.put("snapshots/20261126T020000Z-4f2a1c3b.json", b'{"secret": "canary"}')
    names = sorted(inner.objects)
    assert names[0].startswith("objects/") and names[2].startswith("snapshots/")
    assert names[1] == REPOSITORY_FILE
    for name, body in inner.objects.items():
        assert HASH not in name and "20261126" not in name
        assert b"canary" not in body
    # deterministic: the same key always has the same remote name, and maps back
    assert store.remote_key(f"objects/ab/{HASH}") == names[0]
    assert sorted(store.list("")) == sorted(
        [REPOSITORY_FILE, f"objects/ab/{HASH}", "snapshots/20261126T020000Z-4f2a1c3b.json"]
    )
    assert list(store.list("objects/ab")) == [f"objects/ab/{HASH}"]
    assert list(store.list("objects/cd")) == []


def test_marker_is_plaintext_and_holds_no_secret() -> None:
    identity = pyrage.x25519.Identity.generate()
    inner = MemoryStorage()
    _create(inner, identity)
    found = read_marker(inner)
    assert found is not None
    info, marker = found
    assert info == INFO and marker is not None
    assert str(identity) not in inner.objects[REPOSITORY_FILE].decode()


def test_same_plaintext_again_is_a_no_op_other_plaintext_is_refused() -> None:
    identity = pyrage.x25519.Identity.generate()
    store = _create(MemoryStorage(), identity)
    store.put(f"objects/ab/{HASH}", b"one")
    store.put(f"objects/ab/{HASH}", b"one")  # new age ciphertext, same plaintext: fine
    with pytest.raises(KeyExists):
        store.put(f"objects/ab/{HASH}", b"two")


def test_wrong_or_missing_identity_is_a_clear_error() -> None:
    identity = pyrage.x25519.Identity.generate()
    inner = MemoryStorage()
    _create(inner, identity)
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(AgeKeyError, match="SBX_AGE_IDENTITY_FILE") as wrong:
        EncryptedStorage.unlock(inner, recipients=[], identities=[other])
    assert wrong.value.exit_code == 2 and "cannot decrypt" in str(wrong.value)
    with pytest.raises(AgeKeyError, match="no age identity is set"):
        EncryptedStorage.unlock(inner, recipients=[], identities=[])


def test_create_refuses_recipients_that_no_identity_here_can_read() -> None:
    inner = MemoryStorage()
    mine, theirs = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    with pytest.raises(AgeKeyError, match="matches none of the recipients"):
        EncryptedStorage.create(inner, INFO, recipients=[theirs.to_public()], identities=[mine])
    assert inner.objects == {}


def test_damaged_ciphertext_is_an_integrity_error_naming_the_object() -> None:
    identity = pyrage.x25519.Identity.generate()
    inner = MemoryStorage()
    store = _create(inner, identity)
    store.put(f"objects/ab/{HASH}", b"x" * 1000)
    store.put("snapshots/20261126T020000Z-4f2a1c3b.json", b"{}")
    for name, body in list(inner.objects.items()):
        if name != REPOSITORY_FILE:
            inner.objects[name] = body[:-10] + b"0123456789"
    with pytest.raises(CorruptObject, match=HASH):
        store.get(f"objects/ab/{HASH}")
    with pytest.raises(ManifestInvalid):
        store.get("snapshots/20261126T020000Z-4f2a1c3b.json")


def test_recipients_and_identity_files_are_parsed_with_clear_errors(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    assert len(parse_recipients([key.recipient, f" {key.recipient} "])) == 2
    with pytest.raises(AgeKeyError, match="SBX_AGE_RECIPIENTS"):
        parse_recipients(["age1notakey"])
    assert len(parse_identities(key.file.read_text(), str(key.file))) == 1
    with pytest.raises(AgeKeyError, match="AGE-SECRET-KEY-1"):
        parse_identities("# only a comment\n", "the file")


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 3 * 65_536 + 5])
def test_size_is_the_plaintext_size_from_the_age_header(size: int) -> None:
    identity = pyrage.x25519.Identity.generate()
    store = _create(MemoryStorage(), identity)
    store.put(f"objects/ab/{HASH}", b"z" * size)
    assert store.size(f"objects/ab/{HASH}") == size
