"""Small shared types with no heavy imports: boxes, images, chat messages.

Coordinates: a :class:`Box` is always in the *original* image's pixel coordinates
(x to the right, y down, origin at the top-left corner of the top-left pixel), with the
same box normalised to 0-1 alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # numpy/PIL are light, but keep `import medmo_agent` minimal anyway
    import numpy as np
    from PIL import Image

__all__ = [
    "Box",
    "ImageMeta",
    "ImagePart",
    "MedImage",
    "Message",
    "TextPart",
    "WindowInfo",
]


class Box(BaseModel):
    """A labelled box in original-image pixels, plus the same box normalised to 0-1."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description="What the box marks, as the model named it.")
    x1: float = Field(description="Left edge, original-image pixels.")
    y1: float = Field(description="Top edge, original-image pixels.")
    x2: float = Field(description="Right edge, original-image pixels.")
    y2: float = Field(description="Bottom edge, original-image pixels.")
    x1_norm: float = Field(ge=0, le=1, description="Left edge as a fraction of image width.")
    y1_norm: float = Field(ge=0, le=1, description="Top edge as a fraction of image height.")
    x2_norm: float = Field(ge=0, le=1, description="Right edge as a fraction of image width.")
    y2_norm: float = Field(ge=0, le=1, description="Bottom edge as a fraction of image height.")
    width_mm: float | None = Field(
        None, description="Box width in mm, when pixel spacing is known."
    )
    height_mm: float | None = Field(
        None, description="Box height in mm, when pixel spacing is known."
    )

    @classmethod
    def from_pixels(
        cls,
        label: str,
        xyxy: tuple[float, float, float, float],
        image_size: tuple[int, int],
        pixel_spacing: tuple[float, float] | None = None,
    ) -> Box:
        """Build a box from original-pixel corners; ``image_size`` is (width, height).

        ``pixel_spacing`` is (row spacing, column spacing) in mm, as DICOM orders it.
        """
        w, h = image_size
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        width_mm = height_mm = None
        if pixel_spacing is not None:
            row_mm, col_mm = pixel_spacing
            width_mm = round((x2 - x1) * col_mm, 2)
            height_mm = round((y2 - y1) * row_mm, 2)
        return cls(
            label=label,
            x1=round(x1, 1),
            y1=round(y1, 1),
            x2=round(x2, 1),
            y2=round(y2, 1),
            x1_norm=round(min(max(x1 / w, 0.0), 1.0), 5),
            y1_norm=round(min(max(y1 / h, 0.0), 1.0), 5),
            x2_norm=round(min(max(x2 / w, 0.0), 1.0), 5),
            y2_norm=round(min(max(y2 / h, 0.0), 1.0), 5),
            width_mm=width_mm,
            height_mm=height_mm,
        )

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """Corners in original-image pixels."""
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when disjoint)."""
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


class WindowInfo(BaseModel):
    """The intensity window used to render a clinical image to 8 bits."""

    name: str | None = Field(None, description="Preset name (lung, bone, ...) or 'file'/'auto'.")
    width: float | None = None
    level: float | None = None


class ImageMeta(BaseModel):
    """What is known about an image besides its pixels. Contains no patient identifiers
    unless the caller asked for them (``Settings.include_phi``)."""

    source: str = Field(description="Where the image came from (path, URI or 'inline').")
    format: str = Field(description="png, jpeg, tiff, bmp, webp, dicom, dicom-series, nifti, ...")
    modality: str | None = Field(None, description="DICOM modality (CT, MR, CR, DX, ...).")
    original_size: tuple[int, int] = Field(description="(width, height) of the rendered image.")
    pixel_spacing: tuple[float, float] | None = Field(
        None, description="(row, column) spacing in mm, when known."
    )
    window: WindowInfo | None = None
    frame: int | None = Field(
        None, description="Frame chosen: of a multi-frame DICOM, or a 4D NIfTI's time point."
    )
    num_frames: int | None = None
    slice: int | None = Field(None, description="Slice index chosen (volumes, series).")
    num_slices: int | None = None
    plane: str | None = Field(None, description="axial, coronal or sagittal, for volumes.")
    bits_stored: int | None = None
    photometric: str | None = None
    dicom: dict[str, Any] = Field(
        default_factory=dict, description="De-identified DICOM attributes (allow-list only)."
    )


class _Pixels:
    """``MedImage.pixels``: always read as (H, W, 3) uint8, but stored single-channel for
    grey renderings, so that the model-input path resizes one channel instead of three.

    Assigning an (H, W) array stores a grey rendering; its RGB expansion is computed on
    first read and cached. Assigning an (H, W, 3) array stores it as is and drops any grey
    one. (A descriptor whose class access raises ``AttributeError`` is how a dataclass
    field gets no default; ``__init__`` and ``dataclasses.replace`` go through ``__set__``.)
    """

    def __get__(self, obj: Any, objtype: Any = None) -> np.ndarray:
        if obj is None:
            raise AttributeError("pixels")
        state = obj.__dict__
        rgb = state.get("_rgb")
        if rgb is None:
            import numpy as np

            rgb = np.repeat(state["_gray"][:, :, None], 3, axis=2)
            state["_rgb"] = rgb
        return rgb

    def __set__(self, obj: Any, value: np.ndarray) -> None:
        if getattr(value, "ndim", 3) == 2:
            obj.__dict__.update(_gray=value, _rgb=None)
        else:
            obj.__dict__.update(_gray=None, _rgb=value)


@dataclass
class MedImage:
    """An image ready for the model: an 8-bit RGB rendering plus its metadata.

    ``pixels`` reads as (H, W, 3) uint8. Grey renderings (CT, MR, radiographs, grey
    photos) may be given as (H, W) uint8 instead: they are kept single-channel (see
    :attr:`gray`) and expanded to RGB only when ``pixels`` is read, so :meth:`to_pil`
    and :meth:`model_input` never build a full-size three-channel copy.

    ``raw`` keeps the un-windowed values (HU for CT) of the chosen slice or frame, so a
    viewer can re-window without reloading; it is ``None`` for ordinary photos.
    """

    if TYPE_CHECKING:  # to callers a required array field; at run time the descriptor
        pixels: np.ndarray  # uint8, (H, W, 3) or (H, W)
    else:
        pixels: np.ndarray = _Pixels()
    meta: ImageMeta
    raw: np.ndarray | None = None
    volume: Any = None  # loader-specific handle for re-slicing (never serialised)
    handle: str | None = None  # a stable reference (path, URI) other steps can use

    @property
    def gray(self) -> np.ndarray | None:
        """The (H, W) uint8 rendering when the image is stored as grey, else ``None``."""
        return self.__dict__.get("_gray")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        arr = self.gray if self.gray is not None else self.pixels
        return (int(arr.shape[1]), int(arr.shape[0]))

    def to_pil(self) -> Image.Image:
        """The rendering as a PIL RGB image (a new image each call)."""
        from PIL import Image

        gray = self.gray
        if gray is not None:
            # Pillow's L -> RGB is a few times faster than building the RGB array first.
            return Image.fromarray(gray, mode="L").convert("RGB")
        return Image.fromarray(self.pixels, mode="RGB")

    def model_input(self, size: tuple[int, int]) -> Image.Image:
        """The rendering resized to ``size`` = (width, height), as a PIL RGB image.

        Bicubic, as the Qwen3-VL image processor resizes. Grey images are resized on
        their one channel and converted to RGB afterwards: the same pixels as resizing
        the RGB rendering (each channel is resized alike), at a third of the work.
        """
        from PIL import Image

        gray = self.gray
        pil = Image.fromarray(gray, mode="L") if gray is not None else self.to_pil()
        width, height = size
        if pil.size != (width, height):
            pil = pil.resize((width, height), Image.Resampling.BICUBIC)
        return pil.convert("RGB") if pil.mode != "RGB" else pil


@dataclass(frozen=True)
class TextPart:
    """Text inside a chat message."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image inside a chat message."""

    image: MedImage


@dataclass
class Message:
    """One chat turn. ``content`` is plain text or a list of text and image parts."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] = field(default_factory=list)

    @property
    def parts(self) -> list[TextPart | ImagePart]:
        """Content as a list of parts."""
        if isinstance(self.content, str):
            return [TextPart(self.content)]
        return list(self.content)

    @property
    def images(self) -> list[MedImage]:
        """The images in this message, in order."""
        return [p.image for p in self.parts if isinstance(p, ImagePart)]

    @property
    def text(self) -> str:
        """All text parts joined."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))
