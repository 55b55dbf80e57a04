"""Image pre-processing cost per image: the project's loader against plain pydicom + Pillow.

    python benchmarks/image_pipeline.py                        # all inputs, 20 repeats each
    python benchmarks/image_pipeline.py --repeats 50 --json image_pipeline.json
    python benchmarks/image_pipeline.py --only ct512 --only dx3000
    python benchmarks/image_pipeline.py --repeats 3 --json /tmp/x.json   # a smoke run
    python benchmarks/image_pipeline.py --profile dx3000       # where the project's time goes

For each input, one "image" is: load it, window it to 8 bits, and resize it to the size
the model sees (Qwen3-VL ``smart_resize`` with the default budget of
:class:`~medmo_agent.config.Settings`, bicubic as the Qwen3-VL processor resizes). Two ways:

- **project**: :func:`medmo_agent.imaging.load_image` (format sniffing, caps, windowing,
  de-identified metadata, a rendering that reads as RGB) then
  :meth:`~medmo_agent.types.MedImage.model_input` (the resize), as ``openai_compat`` does;
- **plain**: what one writes by hand: ``dcmread`` -> ``pixel_array`` ->
  ``apply_modality_lut`` -> linear window -> uint8 -> PIL resize -> RGB (``Image.open`` ->
  resize -> RGB for the PNG).

Both use the same window, and their outputs are checked to be identical, pixel for pixel
(the run fails otherwise). Inputs, written to a temporary folder: a synthetic 512x512
16-bit CT slice (rescale slope/intercept), pydicom's bundled ``CT_small.dcm``, a synthetic
3000x3000 16-bit DX radiograph and a 3000x3000 8-bit PNG. Median of ``--repeats`` runs,
ms per image.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from _machine import machine_info

VERSIONS = ("pydicom", "pillow", "numpy", "pylibjpeg")


@dataclass(frozen=True)
class Case:
    """One benchmark input: its file, kind, and the (width, level) window both paths use."""

    name: str
    path: Path
    kind: str  # "dicom" or "png"
    window: tuple[float, float] | None
    note: str


def versions() -> dict[str, str]:
    """Installed versions of the imaging libraries."""
    out = {}
    for name in VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


# ----- inputs -----


def write_dicom(path: Path, pixels: np.ndarray, modality: str, **attrs: Any) -> Path:
    """Write a single-frame 16-bit grayscale DICOM (explicit VR little endian)."""
    from pydicom.uid import generate_uid

    from medmo_agent.testing.volumes import new_dicom_dataset

    sop_class = {
        "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    }[modality]
    ds = new_dicom_dataset(sop_class)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Bench^Synthetic"
    ds.PatientID = "BENCH0001"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.HighBit = attrs.pop("BitsStored") - 1
    ds.BitsStored = ds.HighBit + 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom(size: int, rng: np.random.Generator) -> np.ndarray:
    """A round body of soft tissue with a denser core, in air, with noise (float, HU-like)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    r = np.hypot(xx, yy)
    hu = np.where(r < 0.42, 40.0, -1000.0) + np.where(r < 0.12, 660.0, 0.0)
    return hu + rng.normal(0.0, 20.0, (size, size)).astype(np.float32)


def make_inputs(folder: Path) -> list[Case]:
    """Write the benchmark inputs into ``folder``."""
    from PIL import Image
    from pydicom import examples

    rng = np.random.default_rng(0)
    ct_hu = phantom(512, rng)
    ct_stored = np.clip(np.rint((ct_hu + 1024.0) / 1.0), 0, 4095).astype(np.uint16)
    ct = write_dicom(
        folder / "ct512.dcm",
        ct_stored,
        "CT",
        BitsStored=12,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        RescaleType="HU",
        PixelSpacing=[0.7, 0.7],
    )
    # a 14-bit detector radiograph: a bright body on a dark background
    dx_values = (phantom(3000, rng) + 1000.0) * 8.0 + 1000.0
    dx_stored = np.clip(np.rint(dx_values), 0, 16383).astype(np.uint16)
    dx = write_dicom(
        folder / "dx3000.dcm",
        dx_stored,
        "DX",
        BitsStored=14,
        RescaleSlope=1,
        RescaleIntercept=0,
        ImagerPixelSpacing=[0.14, 0.14],
    )
    png = folder / "radiograph3000.png"
    Image.fromarray((dx_stored >> 6).astype(np.uint8), mode="L").save(png)
    small = Path(shutil.copy(examples.get_path("ct"), folder / "CT_small.dcm"))
    return [
        Case("ct512", ct, "dicom", (400.0, 40.0), "synthetic CT 512x512, 12-bit in 16"),
        Case("ct_small", small, "dicom", (400.0, 40.0), "pydicom CT_small.dcm 128x128"),
        Case("dx3000", dx, "dicom", (12000.0, 9000.0), "synthetic DX 3000x3000, 14-bit"),
        Case("png3000", png, "png", None, "3000x3000 8-bit grey PNG"),
    ]


# ----- the two pipelines -----


def target_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the model sees with the default image budget."""
    from medmo_agent.config import Settings
    from medmo_agent.imaging.geometry import model_input_size

    s = Settings()
    return model_input_size((width, height), s.min_pixels, s.max_pixels)


def project(case: Case) -> np.ndarray:
    """The project's path: load_image, then ``MedImage.model_input`` (the resize)."""
    from medmo_agent.imaging import load_image

    img = load_image(case.path, window=case.window)
    return np.asarray(img.model_input(target_size(*img.size)))


def plain(case: Case) -> np.ndarray:
    """The same work by hand with pydicom and Pillow."""
    from PIL import Image

    if case.kind == "png":
        with Image.open(case.path) as im:
            gray = im.convert("L")
    else:
        import pydicom
        from pydicom.pixels import apply_modality_lut

        ds = pydicom.dcmread(case.path)
        values = apply_modality_lut(ds.pixel_array, ds)
        width, level = case.window  # type: ignore[misc]
        low = level - width / 2.0
        scaled = (values.astype(np.float32) - low) * (255.0 / width)
        gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    size = target_size(*gray.size)
    if gray.size != size:
        gray = gray.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(gray.convert("RGB"))


def median_ms(fn: Callable[[Case], Any], case: Case, repeats: int) -> tuple[float, float]:
    """Median and minimum of ``repeats`` timed runs (after one warm-up), in ms."""
    fn(case)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(case)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), min(times)


def measure(case: Case, repeats: int) -> dict[str, Any]:
    """Time both paths on ``case`` and check they produce the same pixels."""
    ours, theirs = project(case), plain(case)
    if ours.shape != theirs.shape:
        raise AssertionError(f"{case.name}: shapes differ: {ours.shape} vs {theirs.shape}")
    diff = int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max())
    p_med, p_min = median_ms(project, case, repeats)
    b_med, b_min = median_ms(plain, case, repeats)
    from medmo_agent.imaging import load_image

    original = load_image(case.path, window=case.window).size
    return {
        "input": case.name,
        "note": case.note,
        "original_size": list(original),
        "model_size": [int(ours.shape[1]), int(ours.shape[0])],
        "window": list(case.window) if case.window else None,
        "project_ms": round(p_med, 2),
        "project_min_ms": round(p_min, 2),
        "plain_ms": round(b_med, 2),
        "plain_min_ms": round(b_min, 2),
        "ratio": round(p_med / b_med, 2),
        "max_pixel_diff": diff,
        "repeats": repeats,
    }


def profile(case: Case, repeats: int, top: int = 25) -> str:
    """cProfile of the project's path on ``case``: the functions that take the time."""
    project(case)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeats):
        project(case)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def table(res: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    m = res["machine"]
    lines = [
        f"Image pipeline (load + window + resize), median ms per image, on {m['cpu']} "
        f"({m['nproc']} cores)",
        f"{'input':10} {'original':>11} {'model':>10} {'project':>9} {'plain':>9} "
        f"{'ratio':>6} {'diff':>5}",
    ]
    for r in res["results"]:
        orig = "x".join(map(str, r["original_size"]))
        model = "x".join(map(str, r["model_size"]))
        lines.append(
            f"{r['input']:10} {orig:>11} {model:>10} {r['project_ms']:>9} {r['plain_ms']:>9} "
            f"{r['ratio']:>6} {r['max_pixel_diff']:>5}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20, help="timed runs per input (default 20)")
    p.add_argument("--only", action="append", help="run only these inputs (repeatable)")
    p.add_argument("--profile", metavar="INPUT", help="profile the project's path on INPUT")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory(prefix="medmo-bench-") as tmp:
        cases = make_inputs(Path(tmp))
        names = [c.name for c in cases]
        for name in (args.only or []) + ([args.profile] if args.profile else []):
            if name not in names:
                p.error(f"unknown input {name!r}; choose from {', '.join(names)}")
        if args.profile:
            (case,) = [c for c in cases if c.name == args.profile]
            print(profile(case, args.repeats))
            return 0
        chosen = [c for c in cases if not args.only or c.name in args.only]
        res = {
            "benchmark": "image_pipeline",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "machine": machine_info(),
            "versions": versions(),
            "results": [measure(c, args.repeats) for c in chosen],
        }
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    bad = [r["input"] for r in res["results"] if r["max_pixel_diff"] > 0]
    if bad:
        print(f"outputs differ for: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
