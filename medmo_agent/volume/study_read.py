"""The study-level read: a few slices, chosen by rule, in one multi-image prompt.

Rule: the key slices of the findings (largest bounding volume first), then slices
evenly spaced over the swept range to fill up to ``Settings.volume_study_read_images``,
shown in slice order. Each image is preceded by ``<image_k>: slice N`` (how MedMO's
evaluations label several images), and the text lists the sweep's findings so the
model can confirm or correct them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..tasks._common import image_kind, system_message
from ..types import ImagePart, MedImage, Message, TextPart
from .results import Finding

__all__ = ["choose_slices", "study_messages"]


def choose_slices(findings: list[Finding], swept: list[int], most: int) -> list[int]:
    """Up to ``most`` slices: key slices of the findings first, then evenly spaced ones."""
    chosen: list[int] = []
    for f in sorted(findings, key=lambda f: (-f.volume_ml, f.id)):
        if len(chosen) < most and f.key_slice not in chosen:
            chosen.append(f.key_slice)
    spare = [s for s in swept if s not in chosen]
    room = most - len(chosen)
    if room > 0 and spare:
        # the centres of `room` equal parts of the swept slices
        picks = {
            spare[min(len(spare) - 1, int((i + 0.5) * len(spare) / room))] for i in range(room)
        }
        chosen += sorted(picks)
    return sorted(chosen)


def study_messages(
    render: Callable[[int], MedImage],
    chosen: list[int],
    findings: list[Finding],
    *,
    plane: str,
    num_slices: int,
    question: str | None = None,
) -> list[Message]:
    """One user turn holding every chosen slice, each labelled with its slice index."""
    parts: list[TextPart | ImagePart] = []
    kind = "image"
    for k, index in enumerate(chosen, start=1):
        image = render(index)
        kind = image_kind(image)
        parts.append(TextPart(f"<image_{k}>: slice {index}"))
        parts.append(ImagePart(image))
    listed = "\n".join(
        f"- #{f.id} {f.label}: slices {f.slice_range[0]}-{f.slice_range[1]}, key slice "
        f"{f.key_slice}, about {f.extent_mm[0]:.0f} x {f.extent_mm[1]:.0f} x "
        f"{f.extent_mm[2]:.0f} mm" + (" (seen on one slice only)" if f.isolated else "")
        for f in findings
    )
    ask = question or (
        "Write a concise radiology report of the whole study, with a Findings section and "
        "an Impression."
    )
    parts.append(
        TextPart(
            f"These are {len(chosen)} {plane} slices ({kind.replace(' image', '')}) of one "
            f"study of {num_slices} slices, in order; each is labelled with its slice index. "
            + (
                f"A slice-by-slice sweep found:\n{listed}\n"
                if findings
                else "A slice-by-slice sweep found nothing to localise.\n"
            )
            + ask
        )
    )
    return [system_message(), Message("user", parts)]
