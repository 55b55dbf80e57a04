"""The parameters MedMO's tasks share, declared once as ``Annotated`` types.

Each type carries its description (what an LLM caller reads), its limits and its
default; the task registry, and through it every surface (the Python toolkit, MCP tools,
LangChain tools, CLI subcommands, review steps, the notebook), reads them from here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from ..types import MedImage

__all__ = [
    "IMAGE",
    "VIEW_PARAMS",
    "Cli",
    "ContextParam",
    "FrameParam",
    "FreeParam",
    "ImageMarker",
    "ImageParam",
    "LabelParam",
    "LabelsParam",
    "MaxNewTokensParam",
    "OptionsParam",
    "PlaneParam",
    "QuestionParam",
    "QuestionTypeParam",
    "ReportTextParam",
    "SliceParam",
    "TargetsParam",
    "WindowParam",
]


@dataclass(frozen=True)
class ImageMarker:
    """Marks a task's image parameter. Surfaces that speak JSON (MCP, LangChain, the CLI)
    take it as a string; the Python toolkit also takes a loaded :class:`MedImage`."""

    description: str


@dataclass(frozen=True)
class Cli:
    """How the command line offers a parameter, where its type alone does not say.

    Attributes:
        option: An ``--option`` even where Python takes the argument by position.
        metavar: The placeholder ``--help`` shows.
        read_file: The command line takes a file to read the text from (``-``: stdin).
        help: A shorter help line than the description, for a person at a shell.
    """

    option: bool = False
    metavar: str | None = None
    read_file: bool = False
    help: str | None = None


IMAGE = ImageMarker(
    "The image: a file path (PNG, JPEG, TIFF, a DICOM file or a DICOM series folder, a "
    "NIfTI volume; on a server, inside its allowed folders), a base64 data URI "
    "('data:image/png;base64,...'), a medmo://images/<id> handle returned earlier in "
    "`image.handle`, or the medmo://results/<id> URI of an earlier result to reuse its "
    "image without re-sending pixels."
)

#: What the image parameter accepts in Python (a path, a URI or handle, a loaded image).
ImageParam = Annotated[
    str | os.PathLike[str] | MedImage,
    IMAGE,
    Cli(help="PNG/JPEG/TIFF, DICOM file or series folder, or NIfTI volume"),
]

WindowParam = Annotated[
    str | None,
    Field(
        description="CT/MR intensity window: lung, mediastinum, bone, brain, abdomen, liver, "
        "soft_tissue, 'WIDTH/LEVEL' (e.g. '400/40'), 'file' (the DICOM's own) or 'auto'. "
        "Ignored for photos and plain PNG/JPEG."
    ),
]
SliceParam = Annotated[
    int | None,
    Field(ge=0, description="Slice index of a volume or DICOM series (default: the middle)."),
]
FrameParam = Annotated[
    int | None,
    Field(ge=0, description="Frame index of a multi-frame DICOM (default: the middle)."),
]
PlaneParam = Annotated[
    Literal["axial", "coronal", "sagittal"] | None,
    Field(description="Plane to slice a volume in (default: axial)."),
]
MaxNewTokensParam = Annotated[
    int | None,
    Field(ge=1, description="Cap on generated tokens (default: the configured one, 512)."),
]

#: How an image is shown to the model: the parameters every image task takes.
VIEW_PARAMS = ("window", "slice", "frame", "plane")

QuestionParam = Annotated[str, Field(min_length=1, description="The question, in plain language.")]
# JSON callers send a list; Python callers may also pass a mapping letter -> text.
OptionsParam = Annotated[
    list[str] | None,
    Field(
        description="Answer choices for a multiple-choice question, without letters: they "
        "are lettered A, B, C, ... in order; at least two."
    ),
    Cli(metavar="OPTION"),
]
QuestionTypeParam = Annotated[
    Literal["open", "closed", "multiple_choice"] | None,
    Field(
        description="open (free text), closed (yes/no) or multiple_choice; inferred from the "
        "question and options when left out."
    ),
]
ContextParam = Annotated[
    str | None,
    Field(
        description="Clinical context to take into account, e.g. '67M, cough for 3 weeks, "
        "smoker'. Never include names or record numbers."
    ),
]
TargetsParam = Annotated[
    list[str] | None,
    Field(
        description="Findings or anatomy to localise, e.g. ['nodule', 'left lung']; leave "
        "out to find all abnormalities."
    ),
    Cli(metavar="FINDING"),
]
LabelParam = Annotated[
    str,
    Field(
        min_length=1,
        description="What to detect, singular: cell, bacterium, nucleus, lesion, polyp, ...",
    ),
]
LabelsParam = Annotated[
    list[str] | None,
    Field(
        description="Candidate labels; leave out for the 15 NIH ChestX-ray14 labels "
        "(Atelectasis, Cardiomegaly, ..., No Finding), or [] to name abnormalities freely."
    ),
    Cli(option=True, metavar="LABEL"),
]
ReportTextParam = Annotated[
    str,
    Field(min_length=1, description="The report text."),
    Cli(read_file=True, metavar="FILE", help="report text file, or - for stdin"),
]
FreeParam = Annotated[
    bool,
    Field(description="Let the model name the abnormalities freely (the same as labels=[])."),
]


#: The view parameters every image task takes, in order, with their declared types.
VIEW_PARAMETERS: tuple[tuple[str, Any], ...] = (
    ("window", WindowParam),
    ("slice", SliceParam),
    ("frame", FrameParam),
    ("plane", PlaneParam),
)


@dataclass(frozen=True)
class View:
    """How an image is shown to the model (a task function's ``view`` argument)."""

    window: str | None = None
    slice: int | None = None
    frame: int | None = None
    plane: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The view as keyword arguments of ``Toolkit.load``."""
        return {name: getattr(self, name) for name in VIEW_PARAMS}


@dataclass(frozen=True)
class Generation:
    """How the model generates for one call (a task function's ``gen`` argument)."""

    max_new_tokens: int | None = None
    on_text: Callable[[str], None] | None = None
    cancel: threading.Event | None = None
