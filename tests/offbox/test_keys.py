"""Where the age keys come from: the identity file, or the sbx-secrets block."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.config import SbxConfig
from offbox.keys import make_key
from sbx.errors import AgeKeyError
from tasks.repository import load_age_keys


def test_identity_from_the_secrets_block(prefect_server: str, tmp_path: Path) -> None:
    from blocks.box import SbxSecrets

    key = make_key(tmp_path)
    SbxSecrets(age_identity=SecretStr(str(key.identity))).save("offbox-test", overwrite=True)
    config = SbxConfig(age_recipients=[key.recipient], offbox={"secrets_block": "offbox-test"})
    keys = load_age_keys(config)
    assert [str(i.to_public()) for i in keys.identities] == [key.recipient]
    assert [str(r) for r in keys.recipients] == [key.recipient]


def test_identity_file_wins_and_a_missing_file_says_what_to_set(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    keys = load_age_keys(SbxConfig(age_identity_file=key.file))
    assert [str(i.to_public()) for i in keys.identities] == [key.recipient]
    with pytest.raises(AgeKeyError, match="SBX_AGE_IDENTITY_FILE") as missing:
        load_age_keys(SbxConfig(age_identity_file=tmp_path / "nope.txt"))
    assert missing.value.exit_code == 2
