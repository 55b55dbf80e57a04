"""The package as users meet it: a light import, an explicit public API, clear errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from medmo_agent.errors import AccessDeniedError, GPUOutOfMemoryError, ImageLoadError, MedmoError
from medmo_agent.imaging.geometry import model_input_size, smart_resize, visual_tokens
from medmo_agent.types import Box


def test_import_medmo_agent_loads_no_torch_transformers_or_langchain():
    code = (
        "import sys, json, medmo_agent, medmo_agent.config, medmo_agent.types, "
        "medmo_agent.errors, medmo_agent.toolkit, medmo_agent.backends, medmo_agent.cli; "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'langchain', "
        "'langchain_core', 'langgraph') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_whole_public_api_loads_no_torch_transformers_or_langchain():
    code = (
        "import sys, json; from medmo_agent import *; "
        "from medmo_agent import Toolkit, Settings, load_image, create_backend; "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'langchain', "
        "'langchain_core', 'langgraph') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_api_all_is_complete_and_every_name_is_importable():
    import medmo_agent

    assert len(medmo_agent.__all__) == len(set(medmo_agent.__all__))
    for name in medmo_agent.__all__:  # importable, and defined inside the package
        value = getattr(medmo_agent, name)
        if callable(value):  # classes and functions: the package's own, not a re-export
            assert value.__module__.startswith("medmo_agent."), name
    # after every name has been loaded, nothing public is left that __all__ does not list
    public = {
        name
        for name, value in vars(medmo_agent).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(medmo_agent.__all__)
    assert dir(medmo_agent) == sorted(medmo_agent.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Toolkti'"):
        medmo_agent.Toolkti  # noqa: B018


def test_public_api_is_the_objects_the_modules_define():
    import medmo_agent
    from medmo_agent.backends import create_backend
    from medmo_agent.config import Settings
    from medmo_agent.imaging import load_image
    from medmo_agent.tasks.registry import TASKS
    from medmo_agent.tasks.results import GroundingResult
    from medmo_agent.toolkit import Toolkit

    assert medmo_agent.Toolkit is Toolkit
    assert medmo_agent.Settings is Settings
    assert medmo_agent.load_image is load_image
    assert medmo_agent.create_backend is create_backend
    assert medmo_agent.TASKS is TASKS
    assert medmo_agent.find_task("ground").result is GroundingResult
    assert medmo_agent.Box is Box and medmo_agent.MedmoError is MedmoError


def test_type_checkers_see_the_same_public_names_as_run_time_imports():
    """The ``if TYPE_CHECKING:`` imports (what mypy and editors read) list __all__."""
    import medmo_agent

    tree = ast.parse(Path(medmo_agent.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "typing.TYPE_CHECKING"
    )
    static = {
        alias.asname or alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert static | {"__version__"} == set(medmo_agent.__all__)


@pytest.mark.parametrize(
    "module", ["medmo_agent.config", "medmo_agent.errors", "medmo_agent.types"]
)
def test_public_modules_declare_exactly_what_they_export(module):
    mod = __import__(module, fromlist=["__all__"])
    assert sorted(mod.__all__) == sorted(set(mod.__all__))
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_errors_carry_the_input_and_the_fix_in_their_message():
    err = ImageLoadError("Not a DICOM file.", input="scan.dcm", fix="Check the file.")
    assert str(err) == "Not a DICOM file. [input: scan.dcm] Fix: Check the file."
    assert err.to_dict() == {
        "error": "ImageLoadError",
        "message": "Not a DICOM file.",
        "input": "scan.dcm",
        "fix": "Check the file.",
    }
    assert isinstance(err, MedmoError)


def test_errors_with_a_default_fix_always_say_what_to_do():
    assert "--allow-dir" in str(AccessDeniedError("Outside the allowed folders.", input="/etc"))
    assert "MedMO-4B-Next" in str(GPUOutOfMemoryError("Out of GPU memory."))


@pytest.mark.parametrize(
    ("size", "expected"),
    [((768, 768), 576), ((1024, 1024), 1024), ((1280, 1280), 1600)],
)
def test_visual_token_counts_match_qwen3_vl(size, expected):
    assert visual_tokens(size, max_pixels=16_777_216) == expected


def test_smart_resize_keeps_multiples_of_32_within_the_budget():
    for w, h in [(3000, 2000), (100, 4000), (31, 31), (2048, 1536)]:
        mw, mh = model_input_size((w, h), 65_536, 1_048_576)
        assert mw % 32 == 0 and mh % 32 == 0
        assert 65_536 <= mw * mh <= 1_048_576
    assert smart_resize(1536, 2048, max_pixels=1_048_576) == (864, 1152)


def test_box_from_pixels_fills_normalised_corners_and_millimetres():
    box = Box.from_pixels("nodule", (100, 50, 300, 150), (1000, 500), pixel_spacing=(0.5, 0.25))
    assert (box.x1_norm, box.y1_norm, box.x2_norm, box.y2_norm) == (0.1, 0.1, 0.3, 0.3)
    assert box.width_mm == 50.0  # 200 px * 0.25 mm (column spacing)
    assert box.height_mm == 50.0  # 100 px * 0.5 mm (row spacing)
    other = Box.from_pixels("x", (200, 50, 400, 150), (1000, 500))
    assert box.iou(other) == pytest.approx(1 / 3)
