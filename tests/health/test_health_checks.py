"""Check families on real inputs without Docker: files, a repository, a TLS server, stats JSON."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from health_helpers import container, report, result, target

from blocks.config import SbxConfig
from sbx.repository import Repository
from tasks.health import backups, disk, exposure, stats, verdicts
from tasks.health.checks import Check, run_check
from tasks.health.metrics import render, write_textfile
from tasks.health.model import HealthContext
from tasks.schedules import record_schedules


def config(tmp_path: Path, **health: object) -> SbxConfig:
    return SbxConfig(stack_dir=tmp_path, health=health)  # type: ignore[arg-type]


def only(checks: list[Check]) -> Check:
    assert len(checks) == 1
    return checks[0]


def test_verdict_log_repeated_high_risk_tags_fail(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    log = tmp_path / "logs" / "watchdog-verdicts.jsonl"
    log.parent.mkdir()
    lines = [
        {"time": (now - timedelta(hours=2)).isoformat(), "tags": ["jailbreak"]},  # too old
        {"time": (now - timedelta(minutes=1)).isoformat(), "tags": ["jailbreak", "benign"]},
        {"time": f"{now - timedelta(minutes=2):%Y-%m-%dT%H:%M:%SZ}", "tags": ["jailbreak"]},
        {"time": now.replace(tzinfo=None).isoformat(), "tags": ["prompt-injection"]},  # naive: UTC
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    cfg = config(tmp_path, verdict_max_repeats=2)
    got = run_check(only(verdicts.plan(cfg)))
    assert got.state == "failing", got
    assert "jailbreak ×2" in got.observed and "1 line(s) not understood" in got.observed
    assert got.measures["high_risk_verdicts"] == 3
    assert run_check(only(verdicts.plan(config(tmp_path, verdict_max_repeats=3)))).state == "ok"


def test_verdict_log_missing_is_info(tmp_path: Path) -> None:
    got = run_check(only(verdicts.plan(config(tmp_path))))
    assert got.state == "info" and "no verdict log" in got.observed


def test_backup_age_against_rpo(tmp_path: Path) -> None:
    location = str(tmp_path / "repo")
    cfg = config(tmp_path)
    got = run_check(only(backups.plan(cfg, location)))
    assert got.state == "info" and "no repository" in got.observed
    repo = Repository.open_or_init(location)
    got = run_check(only(backups.plan(cfg, location)))
    assert got.state == "failing" and "no complete snapshot" in got.observed
    with repo.writer(command="test") as writer:
        writer.begin_snapshot(previous=None)
        writer.commit()
    got = run_check(only(backups.plan(cfg, location)))
    assert got.state == "ok" and got.measures["snapshot_age_seconds"] < 600
    # the age comes from the id alone (no manifest read): give the snapshot a 2-day-old id
    (manifest,) = (tmp_path / "repo" / "snapshots").glob("*.json")
    old = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    manifest.rename(manifest.with_name(f"{old}-00000abc.json"))
    got = run_check(only(backups.plan(cfg, location)))
    assert got.state == "failing" and "48.0 h old (RPO 26 h)" in got.observed, got


def test_no_repository_fails_once_a_backup_is_scheduled(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    location = str(tmp_path / "never-made")
    record_schedules(
        cfg.stack_dir, [("health-check/stack-health-every-5-minutes", ["*/5 * * * *"])], "x"
    )
    assert run_check(only(backups.plan(cfg, location))).state == "info"  # no backup scheduled
    record_schedules(
        cfg.stack_dir, [("backup-stack/stack-backup-nightly", ["0 2 * * * (UTC)"])], "x"
    )
    got = run_check(only(backups.plan(cfg, location)))
    assert (
        got.state == "failing" and "backup-stack/stack-backup-nightly is scheduled" in got.observed
    ), got
    assert got.next_step and "sbx backup" in got.next_step


def test_snapshot_time_from_id() -> None:
    when = backups.snapshot_time("20261127T010203Z-0001a2b3")
    assert when == datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)


def test_disk_thresholds(tmp_path: Path) -> None:
    stack, repo = disk.plan(config(tmp_path), str(tmp_path / "not" / "yet"))
    assert run_check(stack).state == "ok"
    assert run_check(repo).measures["free_bytes"] > 0  # the nearest existing parent's disk
    full = disk.plan(config(tmp_path, disk_min_free_percent=100), "s3://bucket/prefix")
    assert run_check(full[0]).state == "failing"
    assert run_check(full[1]).state == "info"


def test_stats_usage_from_the_api_shape() -> None:
    raw = {
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000},
        "memory_stats": {"usage": 600, "limit": 1000, "stats": {"inactive_file": 100}},
    }
    assert stats.usage(raw) == (20.0, 500.0, 1000.0)
    first = {**raw, "precpu_stats": {}}
    assert stats.usage(first)[0] is None


def test_exposure_only_marked_services_publish_beyond_loopback(tmp_path: Path) -> None:
    outside = container("worker", ports=[("0.0.0.0", 8000, 8000)])
    ctx = HealthContext(
        stack_dir=tmp_path,
        project="p",
        services={
            "worker": target("worker", "openai", info=outside),
            "qdrant": target(
                "qdrant", "qdrant", info=container("qdrant", ports=[("127.0.0.1", 6333, 6333)])
            ),
        },
    )
    got = {r.id: r for r in map(run_check, exposure.plan(config(tmp_path), ctx))}
    assert got["exposure:worker"].state == "failing"
    assert "0.0.0.0:8000->8000" in got["exposure:worker"].observed
    assert got["exposure:qdrant"].state == "ok"
    assert got["tls:proxy"].state == "info"  # no proxy in this stack


def _self_signed(days: float, tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "box.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"cert-{days}.pem", tmp_path / f"key-{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[object]:
    """start(days) -> port of a TLS server in a thread presenting a cert valid that long."""
    import socket

    sockets: list[socket.socket] = []

    def start(days: float) -> int:
        cert, key = _self_signed(days, tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in sockets:
        listener.close()


@pytest.mark.parametrize(("days", "state"), [(5, "failing"), (60, "ok")])
def test_proxy_certificate_expiry(
    tls_server: object, tmp_path: Path, days: float, state: str
) -> None:
    port = tls_server(days)  # type: ignore[operator]
    proxy = target(
        "proxy",
        "proxy",
        info=container("proxy", ports=[("0.0.0.0", port, 443)]),
        exposure=True,
        port=443,
    )
    ctx = HealthContext(stack_dir=tmp_path, project="p", services={"proxy": proxy})
    got = {r.id: r for r in map(run_check, exposure.plan(config(tmp_path), ctx))}
    assert got["tls:proxy"].state == state, got["tls:proxy"]
    assert got["tls:proxy"].measures["certificate_days_left"] == pytest.approx(days, abs=0.1)
    assert got["exposure:proxy"].state == "ok"  # exposed, and marked so


def test_metrics_textfile(tmp_path: Path) -> None:
    rep = report(
        result("backup:newest-snapshot", measures={"snapshot_age_seconds": 3600.0}),
        result("container:qdrant", "failing"),
        result("service:qdrant", "suppressed", parents=["container:qdrant"]),
    )
    text = render(rep)
    labels = 'check="container:qdrant",family="container",target="qdrant"'
    assert f"sbx_health_check_ok{{{labels}}} 0" in text
    assert 'sbx_health_snapshot_age_seconds{check="backup:newest-snapshot"' in text
    assert 'state="suppressed"} 1' in text
    assert "sbx_health_ok{" in text and text.endswith("\n")
    path = tmp_path / "textfile" / "sbx.prom"
    write_textfile(path, rep)
    assert path.read_text() == text
    assert sorted(p.name for p in path.parent.iterdir()) == ["sbx.prom"]


def test_a_crashing_check_is_a_failing_result() -> None:
    def boom() -> object:
        raise RuntimeError("odd answer")

    got = run_check(Check("service", "x", boom))  # type: ignore[arg-type]
    assert got.state == "failing" and "RuntimeError: odd answer" in got.observed


def test_metrics_endpoint_serves_the_newest_saved_report(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from tasks.health.metrics import metrics_server, save_last_report

    server = metrics_server(tmp_path, 0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        assert get("/metrics")[0] == 503  # no report yet
        rep = report(result("disk:stack", "failing"), stack=tmp_path)
        save_last_report(tmp_path, rep)
        code, text = get("/metrics")
        assert code == 200 and text.startswith(render(rep))
        assert "sbx_health_report_age_seconds{" in text
        assert get("/other")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
