"""Whole studies: MedMO over every slice of a CT/MR volume, findings in 3D and in mm.

- :mod:`.selection`: which slices (``"all"``, ``"40:120"``, ``"::2"``), capped;
- :mod:`.sweep`: one request per slice, concurrently, with per-slice progress;
- :mod:`.geometry`: slice positions and the patient frame (DICOM LPS, NIfTI RAS);
- :mod:`.linking`: boxes of adjacent slices linked into findings, measured in mm;
- :mod:`.overview`: a strip of key slices with boxes, and per-slice overlays;
- :mod:`.study_read`: a few slices chosen by rule, read in one multi-image prompt;
- :mod:`.pipeline`: all of it, for the ``ground_volume`` task.
"""

from __future__ import annotations

from .results import Finding, FindingBox, SliceBox, SliceEntry, VolumeResult
from .sweep import slice_progress

__all__ = ["Finding", "FindingBox", "SliceBox", "SliceEntry", "VolumeResult", "slice_progress"]
