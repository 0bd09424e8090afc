"""Health tests reuse the stand-in servers as local processes where Docker is not needed."""

from standins.conftest import start_standin  # noqa: F401  (a fixture, used by name)
