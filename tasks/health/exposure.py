"""What the box shows the network: published addresses beyond loopback, the proxy's certificate.

Only services marked ``exposure = true`` (the proxy) may publish a port on a non-loopback address;
anything else reachable from outside is a finding. The proxy's TLS certificate must be valid for
``health.tls_min_days`` more days.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlsplit

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import TlsError
from tasks.clients.docker_engine import PublishedPort
from tasks.clients.tls import peer_certificate
from tasks.health.checks import Check, Outcome, failing, info, ok
from tasks.health.model import HealthContext, ServiceTarget

HTTPS_PORT = 443


def plan(config: SbxConfig, ctx: HealthContext) -> list[Check]:
    checks = [
        Check("exposure", t.name, partial(_published, t), parents=(f"container:{t.name}",))
        for t in ctx.services.values()
        if t.container is not None and t.container.running
    ]
    proxies = [t for t in ctx.services.values() if t.config.kind == ServiceKind.PROXY]
    if not proxies:
        checks.append(Check("tls", "proxy", lambda: info("no proxy service in this stack")))
    checks += [
        Check("tls", t.name, partial(_certificate, t, config), parents=(f"container:{t.name}",))
        for t in proxies
    ]
    return checks


def beyond_loopback(ports: list[PublishedPort]) -> list[PublishedPort]:
    """The published ports another machine could reach (bound to anything but loopback)."""
    return [p for p in ports if not p.loopback_only]


def describe_ports(ports: list[PublishedPort]) -> str:
    return ", ".join(f"{p.host_ip}:{p.host_port}->{p.container_port}" for p in ports)


def _published(target: ServiceTarget) -> Outcome:
    assert target.container is not None
    outside = beyond_loopback(target.container.ports)
    shown = describe_ports(outside)
    if outside and not target.config.exposure:
        return failing(
            f"publishes {shown} beyond loopback, but is not marked as exposed",
            f"Bind its ports to 127.0.0.1 in the compose file ('127.0.0.1:PORT:PORT') and "
            f"recreate it; if it is meant to be reachable, set services.{target.name}.exposure "
            "= true in sbx.toml.",
            non_loopback_ports=float(len(outside)),
        )
    if outside:
        return ok(f"exposed as configured: {shown}", non_loopback_ports=float(len(outside)))
    count = len(target.container.ports)
    return ok(f"{count} port(s), loopback only" if count else "publishes no port")


def _endpoint(target: ServiceTarget) -> tuple[str, int] | None:
    if target.config.url and target.config.url.startswith("https://"):
        parts = urlsplit(target.config.url)
        return parts.hostname or "127.0.0.1", parts.port or HTTPS_PORT
    container = target.container
    wanted = target.config.port or HTTPS_PORT
    for port in container.ports if container else []:
        if port.container_port == wanted and port.protocol == "tcp" and port.host_port:
            host = "127.0.0.1" if port.host_ip in ("0.0.0.0", "::", "") else port.host_ip  # noqa: S104
            return host, port.host_port
    return None


def _certificate(target: ServiceTarget, config: SbxConfig) -> Outcome:
    if target.container is None and not target.config.url:
        return info("proxy has no container: nothing exposed to check")
    endpoint = _endpoint(target)
    if endpoint is None:
        return info(f"proxy publishes no TLS port {target.config.port or HTTPS_PORT}")
    host, port = endpoint
    try:
        cert = peer_certificate(host, port, timeout_s=config.probe_timeout_s)
    except TlsError as exc:
        return failing(str(exc), "Check the proxy's log and its TLS configuration.")
    days = (cert.not_after - datetime.now(UTC)).total_seconds() / 86400
    observed = (
        f"certificate {cert.subject} expires {cert.not_after:%Y-%m-%d} ({days:.1f} days left)"
    )
    if days < config.health.tls_min_days:
        return failing(
            f"{observed}; less than {config.health.tls_min_days:g} days",
            "Renew the proxy's certificate (e.g. 'certbot renew') and reload the proxy.",
            certificate_days_left=days,
        )
    return ok(observed, certificate_days_left=days)
