"""Reader for NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) through nibabel.

Orientation: the volume is reoriented to the closest canonical RAS+ axes (what
``nibabel.as_closest_canonical`` does: axes permuted and flipped, never resampled), so
index ``i`` runs left->right, ``j`` posterior->anterior, ``k`` inferior->superior. Slices
are then shown in the radiological convention:

- axial (default): anterior at the top, the patient's right on the viewer's left;
- coronal: superior at the top, the patient's right on the viewer's left;
- sagittal: superior at the top, anterior on the viewer's left.

Slice indices count along the canonical axis: axial 0 is the most inferior slice,
coronal 0 the most posterior, sagittal 0 the patient's left-most; the default is the
middle slice. ``ImageMeta.pixel_spacing`` is (row, column) in mm from the header zooms
of the two in-plane axes.

4D volumes: ``frame`` picks the volume (default 0, the first time point).

Windowing: an explicit window or preset applies to the stored values (HU for CT-like
data, where presets make sense); ``"file"``/``None`` uses the header's cal_min/cal_max
when set, else ``"auto"`` (the 0.5-99.5 percentile of the displayed slice).

Caps: the 2D slice against ``max_image_pixels``; one 3D volume in memory (voxels x bytes
per voxel, from the header) against ``max_image_bytes``, which also bounds gzip expansion.
"""

from __future__ import annotations

import builtins
import io
import tempfile
import threading
import zlib
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import AccessDeniedError, ImageLoadError, ImageTooLargeError, InputError
from ..types import ImageMeta, MedImage
from .fileaccess import FileHandle
from .openfiles import OPEN_VOLUMES
from .sources import Source
from .windowing import parse_window, render_window

__all__ = ["PLANES", "NiftiVolume", "read_nifti"]

PLANES = ("axial", "coronal", "sagittal")

# canonical axis sliced for each plane, and the (row, column) axes of the slice
_AXES = {"axial": (2, (1, 0)), "coronal": (1, (2, 0)), "sagittal": (0, (2, 1))}


def read_nifti(
    src: Source,
    settings: Settings,
    *,
    frame: int | None = None,
    slice: int | None = None,
    plane: str | None = None,
    window: Any = None,
) -> MedImage:
    """Read a NIfTI volume and render one slice.

    Args:
        src: The opened source.
        settings: Caps.
        frame: Volume of a 4D file (default 0).
        slice: Slice index along the plane's axis (default: the middle slice).
        plane: ``"axial"`` (default), ``"coronal"`` or ``"sagittal"``.
        window: See :mod:`medmo_agent.imaging.windowing`.

    Raises:
        ImageLoadError: Unreadable or truncated file, out-of-range slice or frame.
        ImageTooLargeError: Over the caps.
        InputError: Unknown plane or window.
    """
    parse_window(window)
    normalise_plane(plane)
    image, files = _load(src, settings)
    reopen = None
    if src.path is not None:
        path, allowed = src.path, src.allowed_dirs
        reopen = lambda: _reopen(path, allowed, settings)  # noqa: E731
    volume = NiftiVolume(image, src.label, settings, files=files, reopen=reopen)
    return volume.render(frame=frame, slice=slice, plane=plane, window=window)


def _reopen(path: Any, allowed: Any, settings: Settings) -> tuple[Any, list[Any]]:
    """Open a released volume's file again, through the same checks as the first time."""
    from .sources import open_source

    src = open_source(path, settings, allowed_dirs=allowed)
    try:
        return _load(src, settings)
    finally:
        src.close()


def normalise_plane(plane: str | None) -> str:
    """``None`` -> ``"axial"``; raise :class:`InputError` for an unknown plane."""
    name = (plane or "axial").strip().lower()
    aliases = {"transverse": "axial", "transaxial": "axial", "frontal": "coronal"}
    name = aliases.get(name, name)
    if name not in PLANES:
        raise InputError(
            f"Unknown plane {plane!r}.",
            input=str(plane),
            fix="Use 'axial', 'coronal' or 'sagittal'.",
        )
    return name


def _import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a core dependency
        raise ImageLoadError(
            "Reading NIfTI needs nibabel, which is not installed.", fix="pip install nibabel"
        ) from exc
    return nibabel


def _load(src: Source, settings: Settings) -> tuple[Any, list[Any]]:
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
            _check_volume(header.get_data_shape(), header, src.label, settings)
            spooled = _spool(src, settings)
            image, files = _nifti_class(nib, head).from_stream(spooled), [spooled]
    except (ImageLoadError, AccessDeniedError):
        raise
    except Exception as exc:  # nibabel raises many types for malformed headers
        raise _corrupt(src.label, exc) from exc
    try:
        _refuse_cifti(image, src.label)
        if not isinstance(image, nib.analyze.AnalyzeImage):  # pragma: no cover - defensive
            raise ImageLoadError(
                f"{src.label} is not a NIfTI or Analyze volume (reader: nifti/nibabel).",
                input=src.label,
                fix="Pass a NIfTI volume (.nii, .nii.gz) or an Analyze .hdr/.img pair.",
            )
    except BaseException:
        _close_all(files)
        raise
    return image, files


def _close_all(files: list[Any]) -> None:
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
        _close_all([hdr, img])
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
            raise _corrupt(src.label, cut) from cut
        out.seek(0)
    except zlib.error as exc:
        out.close()
        raise _corrupt(src.label, exc) from exc
    except BaseException:
        out.close()
        raise
    return out


_CHUNK = 1 << 22


def _corrupt(label: str, exc: BaseException) -> ImageLoadError:
    return ImageLoadError(
        f"{label} could not be read as NIfTI (reader: nifti/nibabel; truncated or corrupt): {exc}",
        input=label,
        fix="Re-export the volume; check that the whole file was copied.",
    )


def _check_volume(
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
    x, y, z = (*shape, 1, 1, 1)[:3]
    spatial = (x, y, z)
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
    return spatial, frames, channels


class NiftiVolume:
    """A NIfTI image kept for re-slicing; stored in ``MedImage.volume``.

    Voxels stay in the file (for a ``.nii.gz``, an anonymous temporary file holding the
    inflated volume): each render reads only the one slice it shows, so a kept volume
    holds no voxel data in memory. The open files count against ``max_open_volumes``
    (see :mod:`.openfiles`); a released volume read from a path reopens it when sliced
    again.
    """

    def __init__(
        self,
        image: Any,
        label: str,
        settings: Settings,
        *,
        files: list[Any] | None = None,
        reopen: Any = None,
    ):
        self.image = image
        self.label = label
        self.settings = settings
        self.spatial, self.num_frames, self.channels = _check_volume(
            image.shape, image.header, label, settings
        )
        self._files = list(files or [])
        self._reopen = reopen
        self._lock = threading.Lock()
        self._ornt: Any = None
        self._zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)
        self._orient()
        if self._files:
            OPEN_VOLUMES.touch(self, settings.max_open_volumes)

    def _orient(self) -> None:
        from nibabel.orientations import inv_ornt_aff, io_orientation

        affine = self.image.affine
        self._ornt = io_orientation(affine)
        canon = affine @ inv_ornt_aff(self._ornt, self.spatial)
        zx, zy, zz = (float(z) for z in np.sqrt((canon[:3, :3] ** 2).sum(axis=0)))
        self._zooms = (zx, zy, zz)

    @property
    def is_open(self) -> bool:
        """Whether the volume holds its files open now."""
        return self.image is not None

    def release(self) -> None:
        """Close the volume's files (they are reopened when a path volume is sliced)."""
        with self._lock:
            files, self._files = self._files, []
            if files:
                self.image = None
            _close_all(files)
        OPEN_VOLUMES.forget(self)

    def canonical_shape(self) -> tuple[int, int, int]:
        """The spatial shape in canonical (RAS+) axis order."""
        out = [0, 0, 0]
        for axis, (to, _) in enumerate(self._ornt):
            out[int(to)] = self.spatial[axis]
        return out[0], out[1], out[2]

    def read_slice(self, frame: int, axis: int, index: int) -> np.ndarray:
        """One canonical slice: index ``index`` along canonical axis ``axis`` of frame
        ``frame``, with the two other canonical axes in order (channels last)."""
        from nibabel.orientations import apply_orientation

        if self.image is None:
            self._open_again()
        src_axis = next(a for a, (to, _) in enumerate(self._ornt) if int(to) == axis)
        flipped = self._ornt[src_axis][1] < 0
        at = self.spatial[src_axis] - 1 - index if flipped else index
        ndim = len(self.image.shape)
        slicer: list[Any] = []
        for d in range(ndim):
            if d == src_axis:
                slicer.append(at)
            elif d == 3:
                slicer.append(frame)
            elif d > 3:
                slicer.append(0)
            else:
                slicer.append(builtins.slice(None))
        try:
            data = np.asanyarray(self.image.dataobj[tuple(slicer)])
        except Exception as exc:
            raise _corrupt(self.label, exc) from exc
        shape = list(self.spatial)
        shape[src_axis] = 1
        if self.channels:
            data = np.stack([np.asarray(data[c], dtype=np.uint8) for c in self.channels], -1)
            data = data.reshape((*shape, len(self.channels)))
        else:
            data = data.reshape(shape)
        return np.take(apply_orientation(data, self._ornt), 0, axis=axis)

    def _open_again(self) -> None:
        if self._reopen is None:
            raise ImageLoadError(
                f"{self.label} was closed to keep at most {self.settings.max_open_volumes} "
                "volumes open (max_open_volumes), and an inline volume cannot be reopened.",
                input=self.label,
                fix="Send the volume again, or raise MEDMO_MAX_OPEN_VOLUMES.",
            )
        self.image, self._files = self._reopen()

    def render(
        self,
        *,
        frame: int | None = None,
        slice: int | None = None,
        plane: str | None = None,
        window: Any = None,
    ) -> MedImage:
        """Render one slice of one frame."""
        spec = parse_window(window)
        plane_name = normalise_plane(plane)
        t = 0 if frame is None else int(frame)
        if not 0 <= t < self.num_frames:
            raise ImageLoadError(
                f"Frame {t} is out of range for {self.label}, which has {self.num_frames} "
                "volume(s).",
                input=self.label,
                fix=f"Choose a frame between 0 and {self.num_frames - 1}.",
            )
        zooms = self._zooms
        axis, (row_axis, col_axis) = _AXES[plane_name]
        n = self.canonical_shape()[axis]
        index = n // 2 if slice is None else int(slice)
        if not 0 <= index < n:
            raise ImageLoadError(
                f"Slice {index} is out of range for the {plane_name} plane of {self.label}, "
                f"which has {n} {plane_name} slice(s).",
                input=self.label,
                fix=f"Choose a slice between 0 and {n - 1}.",
            )
        other = [self.canonical_shape()[i] for i in range(3) if i != axis]
        npix = other[0] * other[1]
        if npix > self.settings.max_image_pixels:
            raise ImageTooLargeError(
                f"A {plane_name} slice of {self.label} has {npix:,} pixels, over the "
                f"{self.settings.max_image_pixels:,}-pixel cap.",
                input=self.label,
            )
        with self._lock:
            plane2d = self.read_slice(t, axis, index)  # axes left: the two others, in order
            header = self.image.header
        if self._files:
            OPEN_VOLUMES.touch(self, self.settings.max_open_volumes)
        # (first, second) remaining axes -> rows = higher canonical axis, flipped so that
        # anterior/superior is up; columns flipped so patient right / anterior is on the left.
        raw = np.ascontiguousarray(np.swapaxes(plane2d, 0, 1)[::-1, ::-1])
        if self.channels:
            # colour voxels are shown as stored; a window has no meaning for them
            pixels, raw_kept, used, photometric = raw, None, None, "RGB"
        else:
            file_window = _cal_window(header)
            pixels, used = render_window(raw, spec, file_window=file_window)
            raw_kept, photometric = raw, "MONOCHROME2"
        meta = ImageMeta(
            source=self.label,
            format="nifti",
            original_size=(int(raw.shape[1]), int(raw.shape[0])),
            pixel_spacing=(round(zooms[row_axis], 6), round(zooms[col_axis], 6)),
            window=used,
            frame=t if self.num_frames > 1 else None,
            num_frames=self.num_frames if self.num_frames > 1 else None,
            slice=index,
            num_slices=n,
            plane=plane_name,
            bits_stored=8 if self.channels else int(np.dtype(header.get_data_dtype()).itemsize * 8),
            photometric=photometric,
        )
        # grayscale is kept single-channel; MedImage expands it to RGB when read
        return MedImage(pixels=pixels, meta=meta, raw=raw_kept, volume=self)


def _cal_window(header: Any) -> tuple[float, float] | None:
    try:
        lo, hi = float(header["cal_min"]), float(header["cal_max"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return None
    return (hi - lo, (hi + lo) / 2.0)
