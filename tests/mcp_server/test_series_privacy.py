"""A tool error about one file of a series folder names neither the folder nor the file:
both may carry a patient's name."""

from __future__ import annotations

from pathlib import Path

from mcp import Client
from mcp_helpers import make_server

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.privacy import scrub_text
from medmo_agent.testing.volumes import Phantom, write_dicom_series


async def test_a_sweep_whose_every_slice_fails_names_no_file_of_the_series(image_dir: Path):
    folder = write_dicom_series(Phantom(shape=(3, 32, 32)), image_dir / "Jane_Doe_1961")
    for i, path in enumerate(sorted(folder.iterdir())):
        broken = path.rename(folder / f"Jane_Doe_{i}.dcm")
        broken.write_bytes(broken.read_bytes()[:-500])  # pixel data cut short
    server = make_server(ScriptedBackend(["No Finding"]), image_dir)
    async with Client(server) as client:
        sweep = await client.call_tool("ground_volume", {"image": str(folder)})
    text = sweep.content[0].text
    assert sweep.is_error and "cannot be decoded" in text
    assert "Jane_Doe" not in text and "path#" in text


def test_a_file_inside_a_hidden_folder_gets_its_own_label():
    text = "/scans/Jane_Doe/IM7.dcm is corrupt; /scans/Jane_Doe holds 3 files."
    shown = scrub_text(text, ["/scans/Jane_Doe"])
    assert "Jane_Doe" not in shown and "IM7" not in shown
    assert shown.endswith(" holds 3 files.") and shown.count("path#") == 2
    assert ".dcm is corrupt" in shown  # the extension stays: it tells the format
