"""A flow-running command imports Prefect without the work its run never uses (#20 item 7,
sbx/prefect_import.py), and still runs its flow in full: recorded, logged, with its artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import certifi
import pytest

from sbx.prefect_import import DEFERRED, _load_logging_config, _SettingsByName
from sbx.repository import Repository
from sbx.repository.storage.local import LocalStorage

COMMAND_PROBE = """
import collections, json, sys
from sbx.prefect_import import before_httpx_import
before_httpx_import()  # as sbx.cli's main does first, here before httpx is patched to count
import httpx, ssl, traceback
requests = collections.Counter()
build = ssl.create_default_context
def building(*args, **kwargs):  # counted for Prefect's clients (not its version check)
    caller = traceback.extract_stack(limit=3)[0].filename
    requests["tls contexts"] += "prefect/client/orchestration" in caller
    return build(*args, **kwargs)
ssl.create_default_context = building
send = httpx.Client.send
def counting(self, request, *args, **kwargs):
    requests[request.url.path] += 1
    return send(self, request, *args, **kwargs)
httpx.Client.send = counting
sys.argv = ["sbx", *json.loads(sys.argv[1])]
from sbx.cli import main
from sbx.prefect_import import DEFERRED, ran
UNUSED = (*DEFERRED, "h2.connection", "h2.events", "h2.settings")  # h2.config: httpcore uses it
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("PROBE=" + json.dumps({"code": code, "ran": [m for m in UNUSED if ran(m)],
      "storage_asked": requests["/api/admin/storage"],
      "tls_contexts": requests["tls contexts"]}), file=sys.stderr)
"""


def _probe(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", COMMAND_PROBE, json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    line = [x for x in done.stderr.splitlines() if x.startswith("PROBE=")]
    assert line, done.stdout + done.stderr
    return dict(json.loads(line[-1].removeprefix("PROBE=")))


@pytest.mark.prefect
def test_verify_runs_its_flow_in_full_without_the_deferred_modules(
    prefect_server: str, tmp_path: Path
) -> None:
    stack = tmp_path / f"fixed-cost-{uuid.uuid4().hex[:8]}"
    stack.mkdir()
    (stack / "a.txt").write_text("a")
    repository = Repository.open_or_init(LocalStorage(tmp_path / "repo"))
    with repository.writer(command="test") as writer:
        writer.begin_snapshot(previous=None, tags={}, stack_dir=stack)
        with writer.part("configs", "copy") as part:
            part.add_tree(stack, "configs")
        writer.commit(box={})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_server, SBX_HOME=str(tmp_path / "home"))

    seen = _probe(["verify", "--stack", str(stack), "--repo", str(tmp_path / "repo")], env)

    assert seen["code"] == 0, seen
    assert seen["ran"] == [], seen  # nothing of the run needed them
    assert seen["storage_asked"] == 1, seen  # Prefect asked three times
    assert seen["tls_contexts"] == 0, seen  # was 3 CA bundle loads: one per client of the run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()  # one per key
        ours = [a for a in artifact if a.key == f"verify-{stack.name}"]
        assert ours and ours[0].flow_run_id, artifact
        run_id = ours[0].flow_run_id
        only_ours = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        runs = client.read_flow_runs(flow_run_filter=only_ours)
        assert runs and runs[0].state and runs[0].state.is_completed(), runs
        assert runs[0].name.startswith(f"verify-{stack.name}-"), runs[0].name
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        assert any("verified 1 snapshot(s)" in log.message for log in logs), logs
        for _ in range(60):  # task runs reach the server as events, recorded shortly after
            tasks = client.read_task_runs(flow_run_filter=only_ours)
            if len(tasks) == 2 and all(t.state and t.state.is_completed() for t in tasks):
                break
            time.sleep(0.5)
        assert sorted(t.name.rsplit("-", 1)[0] for t in tasks) == [
            "publish-report",
            "verify-snapshots",
        ], tasks


DEFERRAL_PROBE = """
import sys
from sbx.prefect_import import DEFERRED, prepare_prefect_import, ran
prepare_prefect_import()
import prefect.main
assert not any(ran(m) for m in DEFERRED), [m for m in DEFERRED if ran(m)]
import httpx
assert "pygments" not in sys.modules and callable(httpx.main)  # httpx's stub
assert not ran("h2.connection")
client = httpx.Client(http2=True)  # what needs h2 gets it
import h2.connection
assert h2.connection.H2Connection and ran("h2.connection")  # runs on first use

from prefect.blocks.core import Block
from prefect.blocks.notifications import SlackWebhook
from prefect.blocks.webhook import Webhook
assert Block.get_block_class_from_key("slack-webhook") is SlackWebhook
assert Block.get_block_class_from_key("webhook") is Webhook
import jsonschema
jsonschema.validate(3, {"type": "integer"})
import coolname
assert coolname.generate_slug(2).count("-") == 1
assert all(ran(m) for m in DEFERRED), [m for m in DEFERRED if not ran(m)]
print("OK")
"""


def test_a_deferred_module_runs_in_full_on_first_use() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", DEFERRAL_PROBE], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert done.stdout.strip().endswith("OK"), done.stdout + done.stderr
    assert len(DEFERRED) == 4  # the probe's list is the whole list


def test_the_logging_template_is_filled_as_prefect_fills_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    every = settings.to_environment_variables(include_aliases=True)
    by_name = _SettingsByName(settings)
    assert {name: by_name[name] for name in every} == every
    with pytest.raises(KeyError):
        by_name["PREFECT_NO_SUCH_SETTING"]
    monkeypatch.setenv("PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL", "WARNING")  # an override
    monkeypatch.setenv("PREFECT_LOGGING_ROOT_HANDLERS", "console")  # a list override
    assert load_logging_config is not _load_logging_config  # this process: Prefect's own
    ours = _load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
    assert ours == load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
    assert ours["loggers"]["prefect"]["level"] == "WARNING"
    assert ours["root"]["handlers"] == ["console"]


def test_prefect_clients_load_the_ca_bundle_once_and_not_for_plain_http() -> None:
    import ssl

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from sbx.cli_runs import _SharedTlsContexts

    loaded = []

    class Counting(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return getattr(ssl, name)

        def create_default_context(self, **kwargs: object) -> ssl.SSLContext:
            loaded.append(kwargs)
            return ssl.create_default_context(**kwargs)  # type: ignore[arg-type]

    shared = _SharedTlsContexts(Counting("ssl"))
    with temporary_settings({PREFECT_API_URL: "https://prefect.example/api"}):
        first = shared.create_default_context(cafile=certifi.where())
        assert shared.create_default_context(cafile=certifi.where()) is first
    assert len(loaded) == 1 and first.verify_mode == ssl.CERT_REQUIRED
    assert first.cert_store_stats()["x509_ca"] > 0
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        plain = shared.create_default_context(cafile=certifi.where())
    assert len(loaded) == 1  # nothing loaded for plain HTTP
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0  # trusts no one: fails closed
    assert shared.create_default_context() is not plain  # other uses: ssl's own
