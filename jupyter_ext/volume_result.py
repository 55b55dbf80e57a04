"""A volume sweep result as the viewers read it (see :mod:`medmo_agent.volume.display`,
which the MCP App viewer shares)."""

from __future__ import annotations

from medmo_agent.volume.display import (
    SliceBox,
    SliceResult,
    VolumeFinding,
    VolumeSweep,
    findings_table_html,
    is_volume_result,
    isolated_badge,
)

__all__ = [
    "SliceBox",
    "SliceResult",
    "VolumeFinding",
    "VolumeSweep",
    "findings_table_html",
    "is_volume_result",
    "isolated_badge",
]
