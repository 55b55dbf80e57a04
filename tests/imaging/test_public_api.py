"""The package's public surface and its import cost."""

from __future__ import annotations

import subprocess
import sys

import medmo_agent.imaging as imaging


def test_every_public_name_exists_and_is_listed_once() -> None:
    assert len(imaging.__all__) == len(set(imaging.__all__))
    for name in imaging.__all__:
        assert hasattr(imaging, name), name
    assert {"load_image", "ImageResolver", "draw_boxes", "to_png_bytes"} <= set(imaging.__all__)


def test_importing_the_package_does_not_import_readers_or_torch() -> None:
    code = (
        "import sys, medmo_agent.imaging\n"
        "heavy = [m for m in ('pydicom', 'nibabel', 'torch', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
