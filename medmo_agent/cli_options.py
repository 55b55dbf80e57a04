"""Command-line options that several ``medmo`` subcommands share, declared once."""

from __future__ import annotations

import argparse

__all__ = ["add_view_options"]


def add_view_options(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """Add ``--window``, ``--slice``, ``--frame`` and ``--plane``: how an image is shown."""
    group.add_argument(
        "--window",
        help="CT window: lung, mediastinum, bone, brain, abdomen, liver, "
        "soft_tissue, WIDTH/LEVEL (e.g. 400/40), auto, or file",
    )
    group.add_argument(
        "--slice", type=int, help="slice index of a volume or series (default: middle)"
    )
    group.add_argument("--frame", type=int, help="frame index of a multi-frame DICOM")
    group.add_argument(
        "--plane",
        choices=["axial", "coronal", "sagittal"],
        help="plane of a NIfTI volume (default: axial)",
    )
