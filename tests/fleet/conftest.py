"""Fixtures of the fleet tests: this process's Prefect client pointed at the fleet's server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bed import FleetServer


@pytest.fixture
def on_fleet_server(fleet_server: FleetServer) -> Iterator[str]:
    """Flows and blocks of this process use the fleet's PostgreSQL-backed server; the runs'
    log lines are sent before the settings change back (else they are sent, and fail, at exit)."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: fleet_server.api_url}):
        try:
            yield fleet_server.api_url
        finally:
            APILogWorker.drain_all(timeout=30)
