"""The viewer's render tool and the overlay resource keep image paths out of their
errors, as the tools do: a folder or file name may carry a patient's name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_helpers import make_server

from mcp_server.viewer_app import VIEW_TOOL
from medmo_agent.backends.scripted import ScriptedBackend


async def test_a_render_error_names_the_slice_and_the_fix_but_not_the_image_path(
    image_dir: Path, nifti: str
):
    folder = image_dir / "Jane_Doe_1961"
    folder.mkdir()
    shutil.copy(nifti, folder / "head.nii")
    server = make_server(ScriptedBackend(["nodule: [40, 60, 120, 140]"]), image_dir)
    async with Client(server) as client:
        ground = await client.call_tool("ground", {"image": str(folder / "head.nii")})
        uri = ground.structured_content["result_uri"]
        far = await client.call_tool(VIEW_TOOL, {"result": uri, "slice": 9999})
    assert not ground.is_error, ground.content[0].text
    text = far.content[0].text
    assert far.is_error and "Slice 9999 is out of range" in text
    assert "Choose a slice between 0 and" in text
    assert "Jane_Doe" not in text and "path#" in text


async def test_an_overlay_that_cannot_be_drawn_does_not_name_the_image_file(image_dir: Path):
    import numpy as np
    from PIL import Image

    path = image_dir / "Jane_Doe_chest.png"
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(path)
    server = make_server(ScriptedBackend(["nodule: [40, 60, 120, 140]"]), image_dir)
    async with Client(server) as client:
        ground = await client.call_tool("ground", {"image": str(path)})
        path.unlink()  # gone since the call: the overlay cannot be drawn again
        with pytest.raises(MCPError) as info:
            await client.read_resource(ground.structured_content["result_uri"] + "/overlay")
    text = str(info.value)
    assert "path#" in text and "Jane_Doe" not in text
