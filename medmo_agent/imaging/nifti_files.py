"""Opening NIfTI files with nibabel for :mod:`.nifti`: single files and ``.hdr``/``.img``
pairs, gzip spooled to an anonymous temporary file, and refusals (CIFTI, SPM2 Analyze)
with clear errors. Voxels are not read here: the image reads them lazily from the file.
"""

from __future__ import annotations

import io
import tempfile
import zlib
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import AccessDeniedError, ImageLoadError, ImageTooLargeError
from .filehandles import FileHandle
from .sources import Source

__all__ = ["check_volume", "close_all", "corrupt_error", "open_nifti", "reopen_nifti"]


def reopen_nifti(path: Any, allowed: Any, settings: Settings) -> tuple[Any, list[Any]]:
    """Open a released volume's file again, through the same checks as the first time."""
    from .sources import open_source

    src = open_source(path, settings, allowed_dirs=allowed)
    try:
        return open_nifti(src, settings)
    finally:
        src.close()


def _import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a core dependency
        raise ImageLoadError(
            "Reading NIfTI needs nibabel, which is not installed.", fix="pip install nibabel"
        ) from exc
    return nibabel


def open_nifti(src: Source, settings: Settings) -> tuple[Any, list[Any]]:
    """The nibabel image, reading voxels lazily from a file, and the files it holds open
    (for :meth:`NiftiVolume.release`)."""
    nib = _import_nibabel()
    head = src.head
    try:
        single = head[344:348] == b"n+1\x00" or head[4:8] == b"n+2\x00"
        if not single and (src.name.endswith((".hdr", ".img")) or src.path is None):
            image, files = _load_pair(src, settings, nib)
        elif src.data is None and _raw_head(src) != b"\x1f\x8b":
            # uncompressed file: read lazily from the opened descriptor, which the
            # image keeps (pixel data stays on disk until a slice is asked for)
            handle = src.detach()
            assert isinstance(handle, FileHandle)
            image, files = _nifti_class(nib, head).from_stream(handle.reader()), [handle]
        else:
            # the volume header alone tells if one frame fits, before anything is inflated
            cls = _nifti_class(nib, head)
            header = cls.header_class.from_fileobj(io.BytesIO(head))
            check_volume(header.get_data_shape(), header, src.label, settings)
            spooled = _spool(src, settings)
            image, files = _nifti_class(nib, head).from_stream(spooled), [spooled]
    except (ImageLoadError, AccessDeniedError):
        raise
    except Exception as exc:  # nibabel raises many types for malformed headers
        raise corrupt_error(src.label, exc) from exc
    try:
        _refuse_cifti(image, src.label)
        if not isinstance(image, nib.analyze.AnalyzeImage):  # pragma: no cover - defensive
            raise ImageLoadError(
                f"{src.label} is not a NIfTI or Analyze volume (reader: nifti/nibabel).",
                input=src.label,
                fix="Pass a NIfTI volume (.nii, .nii.gz) or an Analyze .hdr/.img pair.",
            )
    except BaseException:
        close_all(files)
        raise
    return image, files


def close_all(files: list[Any]) -> None:
    for f in files:
        f.close()


def _raw_head(src: Source) -> bytes:
    assert isinstance(src.handle, FileHandle)
    return src.handle.read(2)


def _nifti_class(nib: Any, head: bytes) -> Any:
    nifti2 = int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return nib.Nifti2Image if nifti2 else nib.Nifti1Image


def _load_pair(src: Source, settings: Settings, nib: Any) -> Any:
    """An Analyze 7.5 or NIfTI pair: the header (``.hdr``) and voxels (``.img``) are
    two files side by side; both are opened through the same checks as the first."""
    from .fileaccess import open_path

    is_hdr = src.name.endswith(".hdr")
    other_ext = ".img" if is_hdr else ".hdr"
    kind = "header (.hdr)" if is_hdr else "voxel file (.img)"
    if src.path is None or src.handle is None:
        raise ImageLoadError(
            f"{src.label} is an Analyze/NIfTI pair's {kind}, which is useless without the "
            f"matching {other_ext} file.",
            input=src.label,
            fix="Pass the path of the .hdr with its .img next to it, or convert the pair to "
            "a single .nii.gz (e.g. nibabel.save(nibabel.load('x.hdr'), 'x.nii.gz')).",
        )
    stem = src.path.name[:-4]
    sibling = None
    for ext in (other_ext, other_ext.upper()):
        try:
            opened = open_path(
                src.path.with_name(stem + ext), settings, allowed_dirs=src.allowed_dirs
            )
        except ImageLoadError:
            continue
        if isinstance(opened, FileHandle):
            sibling = opened
            break
        opened.close()
    if sibling is None:
        raise ImageLoadError(
            f"{src.label} is an Analyze/NIfTI pair's {kind}; its {other_ext} file "
            f"({stem}{other_ext}) is not next to it.",
            input=src.label,
            fix=f"Put {stem}{other_ext} in the same folder, or convert the pair to a single "
            ".nii.gz.",
        )
    here = src.detach()
    assert isinstance(here, FileHandle)
    hdr, img = (here, sibling) if is_hdr else (sibling, here)
    try:
        return _read_pair(src, settings, nib, hdr, img)
    except BaseException:
        close_all([hdr, img])
        raise


def _read_pair(src: Source, settings: Settings, nib: Any, hdr: Any, img: Any) -> Any:
    header = hdr.read(4 + 348)
    if header[344:348] == b"ni1\x00":
        cls = nib.Nifti1Pair
    elif header[4:8] == b"ni2\x00":
        cls = nib.Nifti2Pair
    else:
        cls = _spm2_analyze(nib)  # the header nibabel.load picks for plain Analyze
    if img.size > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"{src.label}'s voxel file is {img.size:,} bytes, over the "
            f"{settings.max_image_bytes:,}-byte cap (max_image_bytes).",
            input=src.label,
        )
    file_map = cls.make_file_map({"header": hdr.reader(), "image": img.reader()})
    return cls.from_file_map(file_map), [hdr, img]


def _spm2_analyze(nib: Any) -> Any:
    """Analyze with SPM2's header (scale factor, origin), without SPM's optional .mat
    file, which would be one more file to open by name."""

    class Spm2Analyze(nib.AnalyzeImage):
        header_class = nib.spm2analyze.Spm2AnalyzeHeader

    return Spm2Analyze


# NIfTI intent codes 3000-3099 are CIFTI-2 (grayordinates on surfaces and in volumes).
_CIFTI_INTENTS = range(3000, 3100)


def _refuse_cifti(image: Any, label: str) -> None:
    try:
        code = int(image.header["intent_code"])
    except (KeyError, TypeError, ValueError):
        return
    if code in _CIFTI_INTENTS:
        raise ImageLoadError(
            f"{label} is a CIFTI-2 file (NIfTI-2 container, intent code {code}): "
            "grayordinate data on brain surfaces and in parcels, not an image volume; "
            "CIFTI is not supported.",
            input=label,
            fix="Pass a volume NIfTI (.nii, .nii.gz), e.g. the subject's T1w image, or "
            "resample the CIFTI data to a volume first (wb_command -cifti-separate).",
        )


def _spool(src: Source, settings: Settings) -> Any:
    """The volume's bytes in an anonymous temporary file, inflated when gzipped.

    On disk, not in memory: a small ``.nii.gz`` may expand to ``max_image_bytes``, and
    only the slice asked for is read back. The expansion is still capped.
    """
    stream = src.stream()
    out = tempfile.TemporaryFile(prefix="medmo-nifti-")  # noqa: SIM115 - kept open by the volume
    try:
        first = stream.read(_CHUNK)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if first[:2] == b"\x1f\x8b" else None
        total, chunk = 0, first
        while chunk:
            pending = chunk
            while pending:
                if inflater is None:
                    piece, pending = pending, b""
                else:
                    piece = inflater.decompress(pending, _CHUNK)
                    pending = inflater.unconsumed_tail
                total += len(piece)
                if total > settings.max_image_bytes:
                    raise ImageTooLargeError(
                        f"{src.label} expands to more than {settings.max_image_bytes:,} "
                        "bytes, over the cap (max_image_bytes).",
                        input=src.label,
                    )
                out.write(piece)
            if inflater is not None and inflater.eof:
                break  # trailing bytes after the gzip member are not NIfTI data
            chunk = stream.read(_CHUNK)
        if inflater is not None and not inflater.eof:
            cut = EOFError("the gzip stream ends early")
            raise corrupt_error(src.label, cut) from cut
        out.seek(0)
    except zlib.error as exc:
        out.close()
        raise corrupt_error(src.label, exc) from exc
    except BaseException:
        out.close()
        raise
    return out


_CHUNK = 1 << 22


def corrupt_error(label: str, exc: BaseException) -> ImageLoadError:
    return ImageLoadError(
        f"{label} could not be read as NIfTI (reader: nifti/nibabel; truncated or corrupt): {exc}",
        input=label,
        fix="Re-export the volume; check that the whole file was copied.",
    )


def check_volume(
    shape_in: Any, header: Any, label: str, settings: Settings
) -> tuple[tuple[int, int, int], int, tuple[str, ...]]:
    """(spatial shape, frames, colour channels) from the header, refusing volumes whose
    one 3D frame would not fit in ``max_image_bytes`` before any voxel is read."""
    shape = tuple(int(n) for n in shape_in)
    if len(shape) > 4 and any(n > 1 for n in shape[4:]):
        raise ImageLoadError(
            f"{label} has {len(shape)} dimensions {shape}; only 2D, 3D and 4D volumes are read.",
            input=label,
            fix="Extract a 3D volume first (e.g. with nibabel or fslroi).",
        )
    spatial = (*shape, 1, 1, 1)[:3]
    frames = shape[3] if len(shape) >= 4 else 1
    dtype = np.dtype(header.get_data_dtype())
    # RGB24 (datatype 128) and RGBA32 (2304) voxels are records of uint8 channels
    channels: tuple[str, ...] = tuple(dtype.names[:3]) if dtype.names else ()
    itemsize = dtype.itemsize
    if header.get_slope_inter()[0] not in (None, 1.0):
        itemsize = max(itemsize, 4)  # scaled data is returned as float
    nbytes = int(np.prod(spatial)) * itemsize
    if nbytes > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"{label} holds a {'x'.join(map(str, spatial))} volume ({nbytes:,} bytes "
            f"in memory), over the {settings.max_image_bytes:,}-byte cap (max_image_bytes).",
            input=label,
        )
    return spatial, frames, channels  # type: ignore[return-value]
