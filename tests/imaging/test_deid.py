"""De-identification: patient data in real example files never reaches ImageMeta."""

from __future__ import annotations

import re

import pydicom
import pytest
from pydicom import examples

from medmo_agent.config import Settings
from medmo_agent.imaging import load_image
from medmo_agent.imaging.deid import ALLOWED, PHI_ATTRIBUTES

from .conftest import pydicom_file

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "PatientAddress",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "OperatorsName",
    "StationName",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "StudyDate",
    "StudyTime",
    "ContentDate",
    "DeviceSerialNumber",
)


def leaks(secrets: set[str], text: str) -> list[str]:
    """Secrets found in ``text`` as whole words (so InstitutionName "TOSHIBA" does not match
    the allowed Manufacturer "TOSHIBA_MEC")."""
    return [s for s in secrets if re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)]


def identifying_values(path: str) -> set[str]:
    ds = pydicom.dcmread(path)
    values = set()
    for name in IDENTIFYING:
        value = ds.get(name)
        text = str(value).strip() if value is not None else ""
        if len(text) >= 4:  # shorter strings ("1", "M") occur by chance in any JSON
            values.add(text)
        if name == "PatientName" and value:
            values.update(p for p in str(value).split("^") if len(p) >= 4)
    return values


FILES = [
    examples.get_path("ct"),
    examples.get_path("mr"),
    examples.get_path("rgb_color"),
    examples.get_path("overlay"),
    examples.get_path("jpeg2k"),
]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_identifying_value_appears_in_the_metadata_json(path) -> None:
    secrets = identifying_values(str(path))
    assert secrets, "the example should carry identifying values for this test to mean anything"
    img = load_image(path)
    text = img.meta.model_dump_json()
    assert leaks(secrets, text) == []
    assert set(img.meta.dicom) <= set(ALLOWED)


def test_multiframe_file_with_patient_name_stays_clean() -> None:
    path = pydicom_file("SC_rgb_rle_2frame.dcm")
    secrets = identifying_values(path)
    assert "Lestrade" in secrets
    assert leaks(secrets, load_image(path).meta.model_dump_json()) == []


def test_technical_attributes_are_kept() -> None:
    meta = load_image(examples.get_path("ct")).meta.dicom
    assert meta["Modality"] == "CT"
    assert meta["Rows"] == 128 and meta["Columns"] == 128
    assert meta["PixelSpacing"] == pytest.approx([0.661468, 0.661468])
    assert meta["RescaleIntercept"] == -1024


def test_free_text_descriptions_are_left_out_by_default(tmp_path) -> None:
    ds = examples.ct
    ds.StudyDescription = "CT chest for Jane Roe"
    ds.SeriesDescription = "Jane Roe follow-up"
    path = tmp_path / "desc.dcm"
    ds.save_as(path)
    assert "Roe" not in load_image(path).meta.model_dump_json()


def test_include_phi_opt_in_adds_identifying_attributes() -> None:
    path = examples.get_path("ct")
    img = load_image(path, settings=Settings(include_phi=True))
    assert img.meta.dicom["PatientName"] == "CompressedSamples^CT1"
    assert "CompressedSamples^CT1" in leaks(
        identifying_values(str(path)), img.meta.model_dump_json()
    )
    assert set(img.meta.dicom) <= set(ALLOWED) | set(PHI_ATTRIBUTES)


def test_phi_never_allowed_by_default() -> None:
    assert not set(ALLOWED) & set(IDENTIFYING)
    assert not set(ALLOWED) & set(PHI_ATTRIBUTES)
