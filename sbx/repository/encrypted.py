"""An encrypted repository remote: a :class:`Storage` wrapping another one (docs/repository.md).

Off-box copies are repositories with the local layout, stored through :class:`EncryptedStorage`,
so the engine (snapshots, verify, restore, prune, garbage collection) runs on them unchanged:

- bodies are age-encrypted (pyrage, the maintained binding of the rage implementation) to the
  configured recipients; reading needs one of their identities;
- names keep their first part (``objects/``, ``snapshots/``, ``locks/``) and encrypt the rest
  with AES-SIV (``cryptography``): deterministic, so a key always has the same remote name and
  ``list()`` maps names back, but a name reveals no plaintext hash or snapshot id without the
  name key. The first part is the associated data: a name cannot be moved between folders;
- the name key is random, made when the remote is created, and stored age-encrypted in the
  remote's ``sbx-repository.json``, which stays plaintext and carries an ``encryption`` marker
  (no secret) so any sbx knows the remote is encrypted before it reads anything else.

age encryption is randomised, so a second put of the same content gives other bytes: ``put``
treats an existing key whose *plaintext* is the same as a no-op, as the protocol asks.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import BinaryIO, Final

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, ConfigDict, ValidationError

from sbx.errors import (
    AgeKeyError,
    CorruptObject,
    IntegrityError,
    KeyExists,
    ManifestInvalid,
    ObjectMissing,
)
from sbx.repository.format import (
    OBJECTS_PREFIX,
    REPOSITORY_FILE,
    SNAPSHOTS_PREFIX,
    RepositoryInfo,
    parse_repository_info,
)
from sbx.repository.storage import RetainingStorage, Storage, check_key, check_prefix

ENCRYPTION_SCHEME: Final = "age-x25519+aes-siv-names"
ENCRYPTION_VERSION: Final = 1
_NAME_KEY_BITS = 512  # AES-256-SIV
# the age v1 file format (age-encryption.org/v1): header lines, then nonce and chunked payload
_AGE_NONCE, _AGE_CHUNK, _AGE_TAG = 16, 64 * 1024, 16
_MAX_HEADER_LINE, _MAX_HEADER = 4096, 1 << 20


class EncryptionMarker(BaseModel):
    """The ``encryption`` field of a remote's ``sbx-repository.json``: what, never a secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: str = ENCRYPTION_SCHEME
    version: int = ENCRYPTION_VERSION
    #: base64 of the age file that holds the 64-byte name key, encrypted to the recipients
    name_key: str


def parse_recipients(texts: Sequence[str]) -> list[pyrage.x25519.Recipient]:
    """age recipients (``age1…``) from the configuration; :class:`AgeKeyError` naming a bad one."""
    out = []
    for text in texts:
        try:
            out.append(pyrage.x25519.Recipient.from_str(text.strip()))
        except pyrage.RecipientError as exc:
            raise AgeKeyError.bad_recipient(text, str(exc)) from None
    return out


def parse_identities(text: str, source: str) -> list[pyrage.x25519.Identity]:
    """Every ``AGE-SECRET-KEY-1…`` line of an identity file's text (comments are skipped)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise AgeKeyError.unreadable(source) from None
    if not out:
        raise AgeKeyError.unreadable(source)
    return out


def read_marker(inner: Storage) -> tuple[RepositoryInfo, EncryptionMarker | None] | None:
    """The repository info of ``inner`` and its encryption marker (None: plaintext); None when
    ``inner`` holds no repository."""
    try:
        raw = inner.get(REPOSITORY_FILE)
    except ObjectMissing:
        return None
    where = f"{inner.location}/{REPOSITORY_FILE}"
    data = _json_object(raw, where)
    marker_data = data.pop("encryption", None)
    info = parse_repository_info(json.dumps(data).encode(), where)
    if marker_data is None:
        return info, None
    try:
        marker = EncryptionMarker.model_validate(marker_data)
    except ValidationError as exc:
        raise ManifestInvalid(where, f"its encryption marker is invalid ({exc})") from None
    if marker.scheme != ENCRYPTION_SCHEME or marker.version > ENCRYPTION_VERSION:
        raise ManifestInvalid(
            where,
            f"it is encrypted with {marker.scheme} v{marker.version}, which this sbx does not know",
            "It was made by a newer sbx: upgrade sbx and run the command again.",
        )
    return info, marker


class EncryptedStorage:
    """Storage whose names and bodies are encrypted on the way to ``inner`` (module docstring)."""

    def __init__(
        self,
        inner: Storage,
        name_key: bytes,
        *,
        recipients: Sequence[pyrage.x25519.Recipient],
        identities: Sequence[pyrage.x25519.Identity],
        info_bytes: bytes,
    ) -> None:
        self.inner = inner
        self.location = inner.location
        self._siv = AESSIV(name_key)
        # lock files of a read-only session (prune on a fresh box) go to the identity's own key
        self._recipients = list(recipients) or [i.to_public() for i in identities]
        self._identities = list(identities)
        self._info_bytes = info_bytes  # sbx-repository.json as the engine sees it

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        inner: Storage,
        info: RepositoryInfo,
        *,
        recipients: Sequence[pyrage.x25519.Recipient],
        identities: Sequence[pyrage.x25519.Identity],
    ) -> EncryptedStorage:
        """Make ``inner`` (empty) an encrypted repository with ``info``'s id and parameters.

        The new name key must decrypt with ``identities`` before anything is written: a remote
        that none of this box's identities can read is refused, not created.
        """
        name_key = AESSIV.generate_key(_NAME_KEY_BITS)
        sealed = pyrage.encrypt(name_key, list(recipients))
        try:
            pyrage.decrypt(sealed, list(identities))
        except pyrage.DecryptError:
            raise AgeKeyError.not_a_recipient(inner.location) from None
        marker = EncryptionMarker(name_key=base64.b64encode(sealed).decode())
        body = {**info.model_dump(mode="json"), "encryption": marker.model_dump(mode="json")}
        inner.init()
        with contextlib.suppress(KeyExists):  # another copy created it meanwhile: use theirs
            inner.put(REPOSITORY_FILE, json.dumps(body, indent=1).encode() + b"\n")
        return cls.unlock(inner, recipients=recipients, identities=identities)

    @classmethod
    def unlock(
        cls,
        inner: Storage,
        *,
        recipients: Sequence[pyrage.x25519.Recipient],
        identities: Sequence[pyrage.x25519.Identity],
    ) -> EncryptedStorage:
        """Open the encrypted repository in ``inner``; :class:`AgeKeyError` without a key."""
        found = read_marker(inner)
        info, marker = found if found is not None else (None, None)
        if info is None or marker is None:
            raise ManifestInvalid(
                f"{inner.location}/{REPOSITORY_FILE}",
                "it is not an encrypted sbx repository",
                "Point --repo at the off-box copy made by 'sbx copy'.",
            )
        if not identities:
            raise AgeKeyError.missing(inner.location)
        try:
            name_key = pyrage.decrypt(base64.b64decode(marker.name_key), list(identities))
        except pyrage.DecryptError:
            raise AgeKeyError.wrong(inner.location) from None
        except binascii.Error as exc:
            raise ManifestInvalid(inner.location, f"its name key is not base64 ({exc})") from None
        return cls(
            inner,
            name_key,
            recipients=recipients,
            identities=identities,
            info_bytes=info.model_dump_json().encode(),
        )

    # -- names -----------------------------------------------------------------------------------

    def remote_key(self, key: str) -> str:
        """The name ``key`` has in ``inner`` (deterministic)."""
        first, _, rest = check_key(key).partition("/")
        if not rest:
            return key
        sealed = self._siv.encrypt(rest.encode(), [first.encode()])
        return f"{first}/{base64.b32encode(sealed).decode().rstrip('=').lower()}"

    def plain_key(self, remote: str) -> str | None:
        """The key a name of ``inner`` stands for; None for names this repository did not make."""
        first, _, rest = remote.partition("/")
        if not rest:
            return remote
        try:
            padded = rest.upper() + "=" * (-len(rest) % 8)
            return (
                f"{first}/{self._siv.decrypt(base64.b32decode(padded), [first.encode()]).decode()}"
            )
        except (binascii.Error, InvalidTag, UnicodeDecodeError, ValueError):
            return None

    # -- the Storage protocol ----------------------------------------------------------------------

    def init(self) -> None:
        self.inner.init()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        plaintext = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else data.read()
        if key == REPOSITORY_FILE:
            # written once by create(); the engine's own put of it is a no-op or a conflict
            if json.loads(plaintext) != json.loads(self._info_bytes):
                raise KeyExists(self.location, key)
            return
        remote = self.remote_key(key)
        try:
            self.inner.put(remote, pyrage.encrypt(plaintext, self._recipients))
        except KeyExists:
            # stored before (age output differs each time): the same plaintext is a no-op
            if self.get(key) != plaintext:
                raise

    def get(self, key: str) -> bytes:
        if key == REPOSITORY_FILE:
            self.inner.get(REPOSITORY_FILE)  # ObjectMissing if it went away
            return self._info_bytes
        try:
            sealed = self.inner.get(self.remote_key(key))
        except ObjectMissing:
            raise ObjectMissing(self.location, key) from None
        return self._decrypt(key, sealed)

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def exists(self, key: str) -> bool:
        return self.inner.exists(self.remote_key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        first, slash, _ = prefix.partition("/")
        # names are encrypted after the first part: list that folder (or all) and filter here
        for remote in self.inner.list(first + slash if slash else ""):
            key = self.plain_key(remote)
            if key is not None and key.startswith(prefix):
                yield key

    def delete(self, key: str) -> None:
        self.inner.delete(self.remote_key(key))

    def size(self, key: str) -> int:
        """The plaintext size, from the stored size and the age header (read, not decrypted)."""
        remote = self.remote_key(key)
        try:
            stored = self.inner.size(remote)
            with self.inner.open(remote) as stream:
                header = 0
                while line := stream.readline(_MAX_HEADER_LINE):
                    header += len(line)
                    if line.startswith(b"--- ") or header > _MAX_HEADER:
                        break
        except ObjectMissing:
            raise ObjectMissing(self.location, key) from None
        # age payload: a 16-byte nonce, then 64 KiB chunks each followed by a 16-byte tag
        payload = stored - header - _AGE_NONCE
        chunks = max(1, -(-payload // (_AGE_CHUNK + _AGE_TAG)))
        return max(0, payload - chunks * _AGE_TAG)

    def replace(self, key: str, data: bytes) -> None:
        self.inner.replace(self.remote_key(key), pyrage.encrypt(bytes(data), self._recipients))

    def rename(self, src: str, dst: str) -> None:
        try:
            self.inner.rename(self.remote_key(src), self.remote_key(dst))
        except ObjectMissing:
            raise ObjectMissing(self.location, src) from None
        except KeyExists:
            raise KeyExists(self.location, dst) from None

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        return self.inner.purge_tmp(older_than_s, dry_run=dry_run)

    # -- RetainingStorage (Object Lock), when the inner storage has it --------------------------

    def retained_until(self, key: str) -> datetime | None:
        if not isinstance(self.inner, RetainingStorage):
            return None
        try:
            return self.inner.retained_until(self.remote_key(key))
        except ObjectMissing:
            raise ObjectMissing(self.location, key) from None

    def extend_retention(self, key: str) -> bool:
        if not isinstance(self.inner, RetainingStorage):
            return False
        return self.inner.extend_retention(self.remote_key(key))

    # -- helpers ---------------------------------------------------------------------------------

    def _decrypt(self, key: str, sealed: bytes) -> bytes:
        try:
            return bytes(pyrage.decrypt(sealed, self._identities))
        except pyrage.DecryptError as exc:
            problem = f"its age encryption does not open ({exc})"
            if "no matching keys" in str(exc).lower():
                problem = "it is encrypted to none of this box's age identities"
        if key.startswith(OBJECTS_PREFIX):
            raise CorruptObject(self.location, key.rsplit("/", 1)[-1], problem)
        if key.startswith(SNAPSHOTS_PREFIX):
            raise ManifestInvalid(f"{key} in {self.location}", problem)
        raise IntegrityError(
            f"{key} in {self.location} is damaged: {problem}. Run 'sbx verify --all'."
        )


def _json_object(raw: bytes, where: str) -> dict[str, object]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(where, f"it is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestInvalid(where, "it is not a JSON object")
    return data
