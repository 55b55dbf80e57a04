"""Bad input to a volume sweep: mixed orientations, too many slices, a slice that fails
mid-sweep, a cancelled sweep, a 2D image, a malformed selection."""

from __future__ import annotations

import json
import threading

import numpy as np
import pydicom
import pytest
from PIL import Image

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, InputError, LimitExceededError
from medmo_agent.privacy import scrub_data
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series
from medmo_agent.toolkit import Toolkit
from medmo_agent.volume import slice_progress
from medmo_agent.volume.selection import select_slices


@pytest.fixture
def series(tmp_path):
    return write_dicom_series(Phantom(), tmp_path / "series")


def test_slices_in_two_orientations_are_refused_naming_the_fix(series):
    first = sorted(series.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal slice among axial ones
    ds.save_as(first)
    with pytest.raises(InputError, match="2 different orientations") as info:
        Toolkit(backend=ScriptedBackend(["No Finding"])).ground_volume(str(series))
    assert "localiser" in info.value.fix


def test_more_slices_than_the_cap_are_refused_before_any_request(series):
    backend = ScriptedBackend(["No Finding"])
    kit = Toolkit(backend=backend, settings=Settings(max_volume_slices=10))
    with pytest.raises(LimitExceededError, match=r"24 slices .* limit of 10") as info:
        kit.ground_volume(str(series))
    assert "MEDMO_MAX_VOLUME_SLICES" in info.value.fix
    assert backend.requests == []
    assert kit.ground_volume(str(series), slices="::3").slices == list(range(0, 24, 3))


def test_a_slice_that_fails_mid_sweep_is_recorded_and_the_others_go_on(series):
    files = sorted(series.iterdir(), key=lambda p: pydicom.dcmread(p).ImagePositionPatient[2])
    broken = files[12]  # the middle slice, the one a plain load shows
    broken.write_bytes(broken.read_bytes()[:-2000])  # its pixel data cut short
    result = Toolkit(backend=ScriptedBackend(responder=lesion_reply)).ground_volume(str(series))
    errors = [(e.slice, e.error) for e in result.per_slice if e.error]
    assert [s for s, _ in errors] == [12]
    assert "ImageLoadError" in errors[0][1]
    assert len([e for e in result.per_slice if e.error is None]) == 23
    assert any("1 of 24 slice(s) have no answer" in w for w in result.warnings)
    # links do not cross the failed slice: the lesion (slices 5-11) is untouched
    assert [f.slice_range for f in result.findings] == [(5, 11)]


def test_every_swept_slice_failing_raises_the_first_slices_own_error(tmp_path):
    folder = write_dicom_series(Phantom(shape=(3, 32, 32)), tmp_path / "s")
    backend = ScriptedBackend(["No Finding"])
    by_position = sorted(folder.iterdir(), key=lambda p: pydicom.dcmread(p).ImagePositionPatient[2])
    for path in (by_position[0], by_position[2]):
        path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ImageLoadError, match="cannot be decoded"):
        Toolkit(backend=backend).ground_volume(str(folder), slices="0,2")
    assert backend.requests == []


def test_cancelling_stops_the_slices_not_yet_started(series):
    cancel = threading.Event()
    backend = ScriptedBackend(responder=lesion_reply)
    kit = Toolkit(backend=backend, settings=Settings(volume_concurrency=1))
    seen = []

    def progress(done, total, message):
        seen.append(message)
        if done == 3:
            cancel.set()

    with slice_progress(progress):
        result = kit.ground_volume(str(series), cancel=cancel)
    assert len(backend.requests) == 3
    assert [e.slice for e in result.per_slice if e.error is None] == [0, 1, 2]
    assert all(e.error == "cancelled before it ran" for e in result.per_slice[3:])
    assert "cancelled" in " ".join(result.notes)
    assert seen[0] == "slice 0: 0 box(es) (1/24 slices)"


def test_progress_counts_every_slice_then_the_study_read(series):
    seen = []
    with slice_progress(lambda done, total, message: seen.append((done, total))):
        Toolkit(backend=ScriptedBackend(responder=lesion_reply)).ground_volume(
            str(series), slices="0:5", study_read=True
        )
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]


def test_a_2d_image_is_refused_with_the_task_to_use_instead(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="2D image, not a volume") as info:
        Toolkit(backend=ScriptedBackend(["x"])).ground_volume(str(path))
    assert "`ground`" in info.value.fix


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", list(range(10))),
        ("2:5", [2, 3, 4]),
        ("::4", [0, 4, 8]),
        ("1:8:3", [1, 4, 7]),
        ("0,9,3:5", [0, 3, 4, 9]),
        ("-2:", [8, 9]),
        ("-1", [9]),
    ],
)
def test_slice_selections_follow_python_slice_rules(spec, expected):
    assert select_slices(spec, 10, limit=100, label="v") == expected


@pytest.mark.parametrize("spec", ["a:b", "1:2:3:4", "::0", "20:30", "12", "x"])
def test_a_malformed_or_empty_selection_names_the_argument_and_the_forms(spec):
    with pytest.raises(InputError) as info:
        select_slices(spec, 10, limit=100, label="v")
    assert info.value.input == "slices"


def test_a_failed_slice_names_neither_its_file_nor_the_folder_unless_paths_are_shown(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "Jane_Doe_1961")
    files = sorted(folder.iterdir(), key=lambda p: pydicom.dcmread(p).ImagePositionPatient[2])
    broken = files[12].rename(folder / "Jane_Doe_slice12.dcm")
    broken.write_bytes(broken.read_bytes()[:-2000])
    result = Toolkit(backend=ScriptedBackend(responder=lesion_reply)).ground_volume(str(folder))
    # as the MCP server and `--json` show it: image handles labelled
    shown = json.dumps(scrub_data(result.model_dump(mode="json")))
    assert "cannot be decoded" in shown
    assert "Jane_Doe" not in shown
    kit = Toolkit(
        backend=ScriptedBackend(responder=lesion_reply), settings=Settings(include_paths=True)
    )
    named = kit.ground_volume(str(folder))
    assert "Jane_Doe_slice12.dcm" in named.per_slice[12].error


def test_large_slices_lower_the_sweeps_concurrency_to_the_pixel_budget(series, monkeypatch):
    from medmo_agent.volume import pipeline

    seen = []
    real_sweep = pipeline.sweep

    def recording_sweep(*args, **kwargs):
        seen.append(kwargs["concurrency"])
        return real_sweep(*args, **kwargs)

    monkeypatch.setattr(pipeline, "sweep", recording_sweep)
    # 64 x 64 slices: a budget of 2.5 slices' pixels lets two be decoded at once
    settings = Settings(volume_concurrency=64, volume_max_inflight_pixels=64 * 64 * 5 // 2)
    kit = Toolkit(backend=ScriptedBackend(responder=lesion_reply), settings=settings)
    swept = kit.ground_volume(str(series))
    assert seen == [2]
    assert [f.slice_range for f in swept.findings] == [(5, 11)]
    # a budget under one slice still sweeps, one slice at a time
    tight = Settings(volume_max_inflight_pixels=100)
    Toolkit(backend=ScriptedBackend(responder=lesion_reply), settings=tight).ground_volume(
        str(series), slices="0:3"
    )
    assert seen == [2, 1]
