"""Secrets per box (#22 deliverable 3): on a fleet's shared server each box's S3 keys, age
identity and service API keys live in its own block, ``sbx-secrets-<box>``, and a box reads that
block and no other (tasks/secrets.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyrage
import pytest
from pydantic import SecretStr

from blocks.config import SbxConfig
from sbx.errors import ConfigError, ObjectMissing
from tasks.keys import block_keys
from tasks.repository import load_age_keys, open_storage


class SignedBy(ThreadingHTTPServer):
    """An S3 endpoint that answers every request NoSuchKey and records who signed it."""

    def __init__(self) -> None:
        self.access_keys: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                # AWS4-HMAC-SHA256 Credential=<access key id>/<date>/<region>/s3/aws4_request
                auth = self.headers.get("Authorization", "")
                server.access_keys.append(auth.partition("Credential=")[2].split("/")[0])
                body = b"<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
                self.send_response(404)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def endpoint() -> Iterator[SignedBy]:
    server = SignedBy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_box_reads_only_its_own_secrets_block(
    on_fleet_server: str, endpoint: SignedBy, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.box import SbxSecrets
    from deployments.bootstrap import setup_prefect

    setup_prefect(f"sbx-box-secrets-{run_id}")  # the block types, as `sbx serve` registers them
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)  # only the block's keys can sign
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    identities = {}
    for box in ("a", "b"):
        identities[box] = pyrage.x25519.Identity.generate()
        SbxSecrets(
            aws_access_key_id=SecretStr(f"AKIA{box.upper()}{run_id}"),
            aws_secret_access_key=SecretStr(f"secret-{box}"),
            age_identity=SecretStr(str(identities[box])),
            api_keys={"qdrant": SecretStr(f"qdrant-key-{box}")},
        ).save(f"sbx-secrets-{run_id}-{box}", overwrite=True)

    box_a = SbxConfig(box=f"{run_id}-a", offbox={"endpoint_url": endpoint.url})  # type: ignore[arg-type]
    # the age identity: A's, never B's
    keys = load_age_keys(box_a)
    assert [str(i.to_public()) for i in keys.identities] == [str(identities["a"].to_public())]
    # S3 requests are signed with A's access key
    with pytest.raises(ObjectMissing):
        open_storage("s3://fleet/box-a", box_a).get("config")
    assert endpoint.access_keys and set(endpoint.access_keys) == {f"AKIAA{run_id}"}
    # service API keys (read inside a flow run only): A's
    from prefect import flow

    @flow
    def read_api_keys() -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in block_keys(box_a).items()}

    assert read_api_keys() == {"qdrant": "qdrant-key-a"}

    # a copied sbx.toml naming B's block is refused before anything is read
    wrong = box_a.model_copy(
        update={
            "offbox": box_a.offbox.model_copy(update={"secrets_block": f"sbx-secrets-{run_id}-b"})
        }
    )
    with pytest.raises(ConfigError, match=f"reads only its own block, 'sbx-secrets-{run_id}-a'"):
        load_age_keys(wrong)
    # a box without a block of its own has no secrets (the environment's keys, if any)
    lone = SbxConfig(box=f"{run_id}-c")  # type: ignore[arg-type]
    assert load_age_keys(lone).identities == []
    # on a single box the block is still the one offbox.secrets_block names
    single = SbxConfig(offbox={"secrets_block": f"sbx-secrets-{run_id}-b"})  # type: ignore[arg-type]
    assert [str(i.to_public()) for i in load_age_keys(single).identities] == [
        str(identities["b"].to_public())
    ]
