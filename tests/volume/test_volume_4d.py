"""A 4D NIfTI (volumes over time): the sweep reads the time point asked for (the first by
default, said in a warning), and everything drawn again from the result later (the
overview in reports, the command line's overlays) shows that same time point. The lesion
is in one time point only, so a sweep or a picture of another one finds nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import medmo_agent.backends
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.cli import main
from medmo_agent.errors import InputError
from medmo_agent.imaging import load_image
from medmo_agent.testing.volumes import (
    PERFUSION,
    lesion_reply,
    write_multiframe,
    write_nifti,
    write_perfusion,
)
from medmo_agent.toolkit import Toolkit
from medmo_agent.volume.redraw import overview_png


@pytest.fixture
def volume_4d(tmp_path):
    return write_perfusion(tmp_path / "perfusion.nii.gz")


def _toolkit() -> Toolkit:
    return Toolkit(backend=ScriptedBackend(responder=lesion_reply))


def test_the_first_time_point_is_swept_unless_another_is_chosen(volume_4d):
    default = _toolkit().ground_volume(str(volume_4d), ["nodule"])
    assert default.time_point == 0 and default.findings == []
    assert any("3 time points (4D); time point 0 was swept" in w for w in default.warnings)

    chosen = _toolkit().ground_volume(str(volume_4d), ["nodule"], frame=2)
    assert chosen.time_point == 2
    assert any("time point 2 was swept" in w for w in chosen.warnings)
    (finding,) = chosen.findings
    assert finding.center_mm == pytest.approx(PERFUSION.centre, abs=PERFUSION.spacing[2] / 2 + 0.01)
    assert chosen.to_dict()["time_point"] == 2
    # a 3D volume has no time point and no such warning
    flat = write_nifti(PERFUSION, volume_4d.with_name("flat.nii.gz"))
    plain = _toolkit().ground_volume(str(flat), ["nodule"])
    assert plain.time_point is None and not any("time point" in w for w in plain.warnings)


def test_the_overview_redrawn_for_a_report_shows_the_swept_time_point(volume_4d):
    result = _toolkit().ground_volume(str(volume_4d), ["nodule"], frame=2)
    data = result.to_dict()
    png = overview_png(data, load_image(volume_4d))  # any slice of the volume will do
    assert png is not None
    import io

    strip = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert strip.max() > 200  # the lesion is bright in time point 2 ...
    other = overview_png({**data, "time_point": 0}, load_image(volume_4d))
    assert other is not None
    # ... and absent from time point 0: only the drawn box outline is bright there
    tile = np.asarray(Image.open(io.BytesIO(other)).convert("L"))
    assert (strip > 200).sum() > 2 * (tile > 200).sum()


def test_the_command_line_sweeps_and_draws_the_time_point_asked_for(
    volume_4d, tmp_path, capsys, monkeypatch
):
    backend = ScriptedBackend(responder=lesion_reply)
    monkeypatch.setattr(medmo_agent.backends, "create_backend", lambda settings: backend)
    out = tmp_path / "out"
    argv = ["ground", str(volume_4d), "--slices", "all", "--frame", "2", "--json"]
    code = main([*argv, "--overlay-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["task"] == "ground_volume" and data["time_point"] == 2
    (finding,) = data["findings"]
    key = np.asarray(Image.open(out / f"slice_{finding['key_slice']:04d}.png").convert("L"))
    assert key.max() > 200


def test_a_multiframe_dicom_takes_no_time_point(tmp_path):
    path = write_multiframe(PERFUSION, tmp_path / "enhanced.dcm")
    with pytest.raises(InputError, match="frames are the slices") as caught:
        _toolkit().ground_volume(str(path), frame=1)
    assert "slices=" in caught.value.fix


def test_a_handle_registered_at_a_time_point_is_swept_and_resliced_there(volume_4d):
    kit = _toolkit()
    handle = kit.resolver.register(kit.load(str(volume_4d), frame=2))
    result = kit.ground_volume(handle, ["nodule"])
    assert result.time_point == 2 and len(result.findings) == 1
    # another slice of it (the workflow's closer look at a key slice) stays at time point 2
    closer = kit.load(handle, slice=result.findings[0].key_slice)
    assert closer.meta.frame == 2 and closer.raw.max() > 200


def test_an_overview_is_not_redrawn_over_slices_of_another_size(volume_4d):
    result = _toolkit().ground_volume(str(volume_4d), ["nodule"], frame=2)
    data = result.to_dict()
    slices, rows, cols = data["shape"]
    # a result kept from when the slices were shown at another size: its boxes would land
    # in the wrong places, so the report shows the findings table alone
    assert overview_png({**data, "shape": [slices, rows, cols + 7]}, load_image(volume_4d)) is None
    assert overview_png(data, load_image(volume_4d)) is not None
