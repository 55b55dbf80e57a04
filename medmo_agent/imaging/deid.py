"""Which DICOM attributes may leave the library: an allow-list, never a block-list.

Only the technical attributes in :data:`ALLOWED` reach ``ImageMeta.dicom``; anything not
listed (names, IDs, dates, UIDs, institutions, physicians, private tags, and every
attribute a future file might carry) stays behind.

Free-text descriptions (StudyDescription, SeriesDescription, ProtocolName, ...) are *not*
allowed by default: operators type them by hand and they sometimes hold names or dates,
which is why DICOM PS3.15's Basic Application Level Confidentiality Profile removes them.
Patient age and sex are quasi-identifiers and are left out too.

With ``Settings.include_phi = True`` the caller has explicitly opted in, and
:data:`PHI_ATTRIBUTES` (patient name, ID, birth date, sex, age, study date, accession
number, institution, descriptions, study/series UIDs) are added as well.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["ALLOWED", "PHI_ATTRIBUTES", "deidentified_attributes"]

#: Technical attributes safe to show: acquisition, geometry and rendering parameters.
ALLOWED: tuple[str, ...] = (
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "PatientPosition",
    "Laterality",
    "ImageLaterality",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
    "SeriesNumber",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "Exposure",
    "ConvolutionKernel",
    "MagneticFieldStrength",
    "EchoTime",
    "RepetitionTime",
    "InversionTime",
    "FlipAngle",
    "EchoTrainLength",
    "ScanningSequence",
    "SequenceVariant",
    "MRAcquisitionType",
    "LossyImageCompression",
)

#: Identifying attributes added only when the caller opts in with ``include_phi``.
PHI_ATTRIBUTES: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyDate",
    "SeriesDate",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


def deidentified_attributes(ds: Any, *, include_phi: bool = False) -> dict[str, Any]:
    """The allow-listed attributes of a pydicom dataset, as JSON-ready values.

    Args:
        ds: A ``pydicom.Dataset``.
        include_phi: Also include :data:`PHI_ATTRIBUTES` (the caller opted in).

    Returns:
        Keyword -> value (str, int, float, or a list of those); empty and binary values
        are skipped.
    """
    present = ds.keys()  # top-level only: nested sequences never leak through
    out: dict[str, Any] = {}
    for name, tag in _tags(include_phi):
        # Membership by tag first: a keyword lookup for each of ~45 absent names costs
        # more than the rest of the metadata step.
        if tag not in present:
            continue
        element = ds[tag].value
        if element is None:
            continue
        value = _jsonable(element)
        if value is not None and value != "" and value != []:
            out[name] = value
    return out


@functools.cache
def _tags(include_phi: bool) -> tuple[tuple[str, int], ...]:
    """(keyword, tag) of the attributes that may leave, in :data:`ALLOWED` order."""
    from pydicom.datadict import keyword_dict

    names = ALLOWED + PHI_ATTRIBUTES if include_phi else ALLOWED
    # every name is a standard keyword (a misspelt one fails here, not silently)
    return tuple((name, keyword_dict[name]) for name in names)


def _jsonable(value: Any) -> Any:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import IS, DSdecimal, DSfloat, PersonName

    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        items = [_jsonable(v) for v in value]
        return [v for v in items if v is not None]
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, (DSfloat, DSdecimal, float)):
        return round(float(value), 6)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None
