"""Off-box copies a compromised box cannot destroy: the box's credentials are limited to the
IAM policy docs/repository.md documents (read from that page), on a moto server that enforces
IAM. Copy and restore pass with them; a prune is refused with a clear message; an
administrator's credentials prune."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bed.s3_iam import IamS3, iam_s3_session
from helpers import describe_tree

from offbox.conftest import Sbx
from offbox.keys import AgeKey

DOCS = Path(__file__).resolve().parents[2] / "docs" / "repository.md"
PREFIX = "box1"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                 "Resource": "*"}]}  # fmt: skip


def documented_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The box's policy as docs/repository.md prints it, for ``bucket`` and ``prefix``."""
    text = DOCS.read_text()
    found = re.search(r"<!-- box-policy:.*?-->\n```json\n(.*?)\n```", text, re.DOTALL)
    assert found, "docs/repository.md lost its box-policy block"
    policy: dict[str, Any] = json.loads(
        found.group(1).replace("BUCKET", bucket).replace("PREFIX", prefix)
    )
    return policy


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Iterator[IamS3]:
    bucket = f"sbx-{run_id}-iam"
    policies = {"box": documented_policy(bucket, PREFIX), "admin": ADMIN}
    with iam_s3_session(tmp_path_factory.mktemp("moto-iam"), run_id, policies) as server:
        assert server.bucket == bucket
        yield server


def _env(iam_s3: IamS3, user: str, key: AgeKey) -> dict[str, str]:
    return {
        **iam_s3.users[user].env(),
        "SBX_AGE_RECIPIENTS": key.recipient,
        "SBX_AGE_IDENTITY_FILE": str(key.file),
    }


def _ok(done: Any) -> None:
    assert done.returncode == 0, done.stderr[-3000:]


def _keys(iam_s3: IamS3) -> list[str]:
    listed = iam_s3.users["admin"].client().list_objects_v2(Bucket=iam_s3.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_box_credentials_copy_and_restore_but_cannot_prune(
    run_sbx: Sbx,
    files_stack: Path,
    tmp_path: Path,
    iam_s3: IamS3,
    age_key: AgeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.backup import backup_stack

    url = f"s3://{iam_s3.bucket}/{PREFIX}"
    repo = tmp_path / "repo"
    box, admin = _env(iam_s3, "box", age_key), _env(iam_s3, "admin", age_key)
    at = ["--stack", str(files_stack)]

    # the box's credentials really are limited: a delete outside locks/ is refused by S3
    denied = iam_s3.users["box"].client()
    with pytest.raises(Exception, match="AccessDenied"):
        denied.delete_object(Bucket=iam_s3.bucket, Key=f"{PREFIX}/objects/x")

    # two nights of the scheduled backup-then-copy, in this process, as the box's user
    for name, value in {**box, "SBX_OFFBOX__URL": url}.items():
        monkeypatch.setenv(name, value)
    for night in range(2):
        (files_stack / "notes" / "night.txt").write_text(f"night {night}\n")
        backup_stack(stack=str(files_stack), repo=str(repo), trigger="schedule", offbox=True)
    stored = _keys(iam_s3)
    assert not [k for k in stored if "/locks/" in k], stored  # the copy released its lock

    out = tmp_path / "restored"
    _ok(run_sbx("restore", "latest", *at, "--repo", url, "--to", str(out), env=box))
    parts = ["docker-compose.yml", "env", "notes", "agents"]
    assert describe_tree(out, parts) == describe_tree(files_stack, parts)

    refused = run_sbx("prune", *at, "--repo", url, "--keep-last", "1", env=box)
    assert refused.returncode == 1, refused.stderr[-3000:]
    said = " ".join(refused.stderr.split())
    assert "may not delete" in said and f"sbx prune --repo {url}" in said, said[-2000:]
    assert "Traceback" not in refused.stderr
    assert _keys(iam_s3) == stored  # nothing deleted, and the lock was released

    _ok(run_sbx("prune", *at, "--repo", url, "--keep-last", "1", env=admin))
    after = _keys(iam_s3)
    assert len([k for k in after if "/snapshots/" in k]) == 1
    assert len(after) < len(stored)
