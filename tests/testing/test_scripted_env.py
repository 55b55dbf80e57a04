"""The scripted backend as a served process makes it from its environment: a named
responder answers from the image itself (boxes where a synthetic lesion is)."""

from __future__ import annotations

import pytest

from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError
from medmo_agent.testing import SCRIPTED_RESPONDER_ENV, scripted_env
from medmo_agent.testing.scripted import scripted_backend
from medmo_agent.testing.volumes import Phantom, write_dicom_series
from medmo_agent.toolkit import Toolkit


def test_the_lesion_responder_boxes_the_lesion_of_each_slice(tmp_path):
    write_dicom_series(Phantom(), tmp_path / "study")
    env = scripted_env(responder="lesion")
    assert env[SCRIPTED_RESPONDER_ENV] == "lesion"
    backend = scripted_backend(Settings(), env)
    result = Toolkit(backend=backend).ground_volume(str(tmp_path / "study"), slices="4:13")
    (finding,) = result.findings
    assert finding.slice_range == (5, 11) and finding.key_slice == 8
    # the phantom's sphere of radius 8 mm, at 0.8 mm pixels: 20 px across on slice 8
    (box,) = next(e for e in result.per_slice if e.slice == 8).boxes
    assert box.box == pytest.approx((34.0, 14.0, 54.0, 34.0), abs=0.6)
    assert [e.boxes for e in result.per_slice if e.slice == 4] == [[]]


def test_an_unknown_responder_names_the_setting_and_the_choices():
    with pytest.raises(ConfigError, match="no scripted responder called 'tumour'") as info:
        scripted_backend(Settings(), scripted_env(responder="tumour"))
    assert info.value.input == SCRIPTED_RESPONDER_ENV
    assert "lesion" in info.value.fix
