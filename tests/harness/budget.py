"""The harness's Hypothesis settings: a bounded number of examples for CI, and its seed.

Each property draws ``examples`` examples (times ``SBX_HARNESS_SCALE``, default 1, for a deeper
run by hand). The seed is drawn per run, so CI keeps exploring new trees, and printed at the
end of the run; ``SBX_HARNESS_SEED=N`` replays a run, and a failure also prints the example
itself and a ``@reproduce_failure`` blob. ``SBX_HARNESS_SHRINK=1`` shrinks a failure to a
minimal tree (minutes).
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings

SEED = int(os.environ.get("SBX_HARNESS_SEED") or random.SystemRandom().randrange(2**32))
SCALE = float(os.environ.get("SBX_HARNESS_SCALE") or 1)
# shrinking a failing tree can take Hypothesis minutes: off in CI (the drawn example and the
# seed are printed), on by hand with SBX_HARNESS_SHRINK=1
SHRINK = os.environ.get("SBX_HARNESS_SHRINK") == "1"

F = TypeVar("F", bound=Callable[..., Any])


def bounded(examples: int) -> Callable[[F], F]:
    """Settings and seed of one property: ``@bounded(20)`` above ``@given``."""
    chosen = settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,  # a trial forks rsync and mounts file systems: its time varies
        derandomize=False,
        print_blob=True,
        phases=list(Phase) if SHRINK else [p for p in Phase if p is not Phase.shrink],
        database=None,  # replays come from the printed seed or blob, not a local directory
        # the fixtures are per test on purpose: each example makes its own directories
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )

    def apply(test: F) -> F:
        # one run seed, a different stream per property: the same first tree in every test
        # would explore less
        return seed(SEED ^ zlib.crc32(test.__name__.encode()))(chosen(test))

    return apply
