"""The ``[history]`` table of ``sbx.toml``: how long the Prefect server keeps a box's health runs.

The run history is the audit trail. Health and GPU runs every 5 minutes are 576 of a box's ~582
runs a day; the daily ``prune-history`` run deletes them after ``health_days``. Every other run
(backup, restore, upgrade, drill, incident, …) is left to the server's own database vacuum and
its retention period, which the server's operator sets to the audit period (docs/fleet.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: the flows whose runs ``health_days`` bounds: readings, not changes
READING_FLOWS = ("health-check", "inspect-gpus")


class HistoryConfig(BaseModel):
    """Run history kept on the Prefect server (docs/fleet.md, "The server's upkeep")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    health_days: float = Field(
        default=14,
        ge=0,
        description="Health and GPU runs that ended longer ago than this many days are deleted "
        "from the Prefect server by the daily prune-history run; other runs are kept.",
    )
