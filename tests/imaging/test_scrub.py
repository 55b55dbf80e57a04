"""Identifying values never reach stderr or logs through pydicom's or nibabel's warnings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from medmo_agent.imaging import load_image
from medmo_agent.imaging.scrub import library_warnings_scrubbed, scrub_text

from .test_series import write_series

SECRET_UID = "1.2.826.0.1.3680043.9.PATIENT.JOHN.DOE.19700101"  # not a valid UID


@pytest.fixture
def leaky_series(tmp_path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns while the fixture writes it
        return write_series(tmp_path / "ct", 2, series_uid=SECRET_UID)


def test_the_fixture_really_makes_pydicom_print_the_value(leaky_series: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(next(leaky_series.iterdir()))
    with pytest.warns(UserWarning, match="JOHN.DOE"):
        str(ds.SeriesInstanceUID)


def test_loading_logs_a_scrubbed_line_and_never_the_value(leaky_series: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = load_image(leaky_series)
    assert image.meta.num_slices == 2
    texts = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not any("JOHN" in t or SECRET_UID in t for t in texts), texts
    assert any("Invalid value for VR UI" in t and "details removed" in t for t in texts)


def test_scrubbing_is_limited_to_the_loading_thread_and_block(caplog) -> None:
    caplog.set_level(logging.INFO, logger="medmo_agent.imaging")
    seen_elsewhere: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with library_warnings_scrubbed():
            warnings.warn("Bad value: 'DOE^JANE' inside", UserWarning, stacklevel=1)
            other = threading.Thread(
                target=lambda: warnings.warn("Bad value: 'ROE^RICH' elsewhere", stacklevel=1)
            )
            other.start()
            other.join()
        warnings.warn("Bad value: 'POE^EDGAR' after", UserWarning, stacklevel=1)
        seen_elsewhere = [str(w.message) for w in caught]
    assert seen_elsewhere == ["Bad value: 'ROE^RICH' elsewhere", "Bad value: 'POE^EDGAR' after"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("Bad value (details removed" in t for t in logged)
    assert not any("DOE" in t for t in logged + seen_elsewhere)


def test_scrub_text_keeps_the_leading_words_only() -> None:
    assert scrub_text("Invalid value for VR PN: 'DOE^JOHN'") == (
        "Invalid value for VR PN (details removed: they can hold identifying values)"
    )
    assert "12345" not in scrub_text("The value length (12345) exceeds the maximum")
    assert scrub_text("").startswith("(details removed")


@pytest.mark.slow
def test_the_cli_prints_no_identifying_value_from_library_warnings(
    leaky_series: Path, tiny_checkpoint: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medmo_agent.cli",
            "ask",
            str(leaky_series),
            "What is shown?",
            "--json",
            "--model",
            str(tiny_checkpoint),
            "--max-new-tokens",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "JOHN" not in proc.stderr and SECRET_UID not in proc.stderr
    assert "JOHN" not in proc.stdout and SECRET_UID not in proc.stdout
