"""Every DICOM, NIfTI, Analyze and MINC file shipped by the installed pydicom, pydicom-data,
deid-data and nibabel (and every folder of pydicom's test files, as a series) loads or gets a clear
:class:`MedmoError`: no other exception, and no hang.

The files are loaded in one worker subprocess; each must answer within
``PER_FILE_S`` seconds, else the worker is killed, the file reported as a hang, and a new
worker carries on with the next file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

PER_FILE_S = 20.0
_WORKER = Path(__file__).with_name("corpus_worker.py")
_NOT_IMAGES = {".txt", ".json", ".dump", ".icc", ".py", ".pyc", ".rst", ".md"}
#: pydicom-data (pydicom's larger test files) and deid-data (real-world DICOMs).
_EXTRA_DATA_PACKAGES = ("data_store", "deid_data")
_NIBABEL_EXTS = (".nii", ".nii.gz", ".hdr", ".img", ".mnc", ".dcm", ".ima")


def corpus() -> list[str]:
    """The files and series folders to load, in a stable order."""
    import nibabel
    import pydicom

    paths: set[Path] = set()
    pydicom_data = Path(pydicom.__file__).parent / "data"
    for p in pydicom_data.rglob("*"):
        if "__pycache__" in p.parts:
            continue
        if p.is_file() and p.suffix.lower() not in _NOT_IMAGES:
            paths.add(p)
        elif p.is_dir():
            paths.add(p)  # a folder: read as a DICOM series (or refused clearly)
    for extra in _EXTRA_DATA_PACKAGES:  # test-data packages (the `test` extra installs them)
        spec = importlib.util.find_spec(extra)
        if spec is None or spec.origin is None:
            continue
        for p in Path(spec.origin).parent.rglob("*"):
            skipped = "__pycache__" in p.parts or p.suffix.lower() in _NOT_IMAGES | {".zip"}
            if p.is_file() and not skipped:
                paths.add(p)
    for p in Path(nibabel.__file__).parent.rglob("*"):
        if p.is_file() and p.name.lower().endswith(_NIBABEL_EXTS):
            paths.add(p)
    return sorted(str(p) for p in paths)


class _Worker:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = subprocess.Popen(
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        assert self._line(60.0) == {"ready": True}

    def _line(self, timeout: float) -> dict | None:
        if not self.sel.select(timeout):
            return None
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def load(self, path: str) -> dict | None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return self._line(PER_FILE_S)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_every_shipped_medical_image_loads_or_gets_a_clear_error() -> None:
    paths = corpus()
    assert len(paths) > 150, "pydicom's and nibabel's test data should be installed"
    results: dict[str, dict] = {}
    worker = _Worker()
    try:
        for path in paths:
            result = worker.load(path)
            if result is None:  # hung or died: note it and carry on with a fresh worker
                results[path] = {"outcome": "hang or crash of the worker"}
                worker.close()
                worker = _Worker()
                continue
            assert result["path"] == path
            results[path] = result
    finally:
        worker.close()
    bad = {p: r for p, r in results.items() if r["outcome"] not in ("ok", "error")}
    assert not bad, json.dumps(bad, indent=1)[:5000]
    loaded = [p for p, r in results.items() if r["outcome"] == "ok"]
    assert len(loaded) > 100
    names = {Path(p).name: r for p, r in results.items()}
    for name in ("badVR.dcm", "image_dfl.dcm", "anatomical.nii", "example_nifti2.nii.gz"):
        assert names[name]["outcome"] == "ok", (name, names[name])
    for name, words in {
        "row_major.dconn.nii": "CIFTI-2",
        "minc2_4d.mnc": "MINC2",
        "tiny.mnc": "MINC1",
        "nifti1.hdr": "nifti1.img",
        "meta_missing_tsyntax.dcm": "Rows (0028,0010)",
    }.items():
        assert words in names[name].get("detail", ""), (name, names[name])
    # no message is a bare library error
    for p, r in results.items():
        assert "invalid literal for int()" not in r.get("detail", ""), p
