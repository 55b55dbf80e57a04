"""The diagnostic workflow's steps for a CT/MR volume: sweep every slice first, then
verify each 3D finding on its key slice (the shared ``verify`` step, which asks on the
finding's slice), then report on the key slice with the 3D findings as context.

A volume input (a folder, ``.nii``/``.nii.gz``) runs :data:`VOLUME_STEPS` unless the
caller chose other steps; ``volume=True``/``False`` on ``run`` decides explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .prompts import format_context
from .workflow_steps import StepContext

__all__ = ["VOLUME_STEPS", "finding_line", "looks_like_volume", "study_report", "sweep"]

VOLUME_STEPS = ("sweep", "verify", "study_report", "impression")


def looks_like_volume(image: str) -> bool:
    """Whether ``image`` names a volume on this machine: a folder (a DICOM series) or a
    NIfTI file. Anything else (a handle, a remote path, a 2D file) is read as one image."""
    name = str(image).lower()
    if name.endswith((".nii", ".nii.gz")):
        return True
    try:
        return os.path.isdir(Path(image).expanduser())
    except (OSError, ValueError):
        return False


async def sweep(step: StepContext, max_findings: int = 5) -> dict[str, Any] | None:
    """Every slice (ground_volume); the largest ``max_findings`` 3D findings go on to
    ``verify``, each with its key slice and that slice's box."""
    from ..types import Box

    result = await step.call("ground_volume", image=step.image)
    findings = sorted((result or {}).get("findings") or [], key=lambda f: -f["volume_ml"])
    if len(findings) > max_findings:
        step.note(f"{len(findings)} findings in 3D; verifying the largest {max_findings}.")
    _, rows, cols = (result or {}).get("shape") or (0, 1, 1)
    spacing = (result or {}).get("spacing_mm") or (None, None)
    for f in findings[:max_findings]:
        xyxy = next(b["box"] for b in f["boxes"] if b["slice"] == f["key_slice"])
        box = Box.from_pixels(f["label"], tuple(xyxy), (cols, rows), _pixel_spacing(spacing))
        step.findings.append(
            {"label": f["label"], "box": box.model_dump(), "slice": f["key_slice"], "3d": f}
        )
    if result is not None and not findings:
        step.note("No abnormality was localised on any slice.")
    return result


def _pixel_spacing(spacing: Any) -> tuple[float, float] | None:
    try:
        return (float(spacing[0]), float(spacing[1]))
    except (TypeError, ValueError, IndexError):
        return None


def finding_line(f: dict[str, Any]) -> str:
    """One finding in words: its slices, size and verification."""
    g = f.get("3d") or {}
    status = {True: "confirmed", False: "not confirmed", None: "unverified"}[f.get("verified")]
    size = " x ".join(f"{v:.0f}" for v in g.get("extent_mm", ())) or "?"
    first, last = g.get("slice_range", (f.get("slice"), f.get("slice")))
    return f"{f['label']}: slices {first}-{last}, key slice {f.get('slice')}, {size} mm ({status})"


async def study_report(step: StepContext) -> dict[str, Any] | None:
    """A report on the key slice of the largest confirmed finding (else the largest, else
    the middle slice), with the 3D findings as context (report)."""
    confirmed = [f for f in step.findings if f.get("verified")] or step.findings
    slice_ = confirmed[0]["slice"] if confirmed else None
    lines = [finding_line(f) for f in step.findings]
    ctx = format_context(step.context)
    found = "3D findings from a sweep of every slice:\n" + "\n".join(lines) if lines else ""
    context = "\n".join(x for x in (ctx, found) if x) or None
    return await step.call("report", image=step.image, slice=slice_, context=context)
