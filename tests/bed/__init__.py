"""The session test bed: real services for the tests (design.md, "Test bed").

The fixtures live in ``tests/conftest.py``; this package holds what they are made of, and what
tests may import themselves (``from bed import require_service, RunningStack, S3Server``).
"""

from .fault_proxy import FaultProxy
from .postgres import FleetServer
from .s3 import S3Server
from .services import free_port, require_service, required_services, wait_until
from .stack import RunningStack

__all__ = [
    "FaultProxy",
    "FleetServer",
    "RunningStack",
    "S3Server",
    "free_port",
    "require_service",
    "required_services",
    "wait_until",
]
