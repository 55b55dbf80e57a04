"""MedMO's tasks as MCP tools: thin wrappers over :class:`medmo_agent.toolkit.Toolkit`.

Each docstring is the tool's description, read by the calling LLM: what the tool does,
when to use it, and what the image argument accepts. Input schemas come from the type
hints; output schemas from the result models.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from medmo_agent.tasks.results import (
    ClassificationResult,
    DetectionResult,
    GroundingResult,
    ReasoningResult,
    ReportResult,
    SummaryResult,
    TextQAResult,
    VQAResult,
)

from .runner import ToolCall, run_tool

__all__ = ["TOOL_NAMES", "register_tools"]

TOOL_NAMES = (
    "vqa",
    "ground",
    "report",
    "reason",
    "classify",
    "detect",
    "summarize_report",
    "text_qa",
)

ImageArg = Annotated[
    str,
    Field(
        description=(
            "The image: a file path inside the server's allowed folders (PNG, JPEG, TIFF, a "
            "DICOM file or a DICOM series folder, a NIfTI volume), a base64 data URI "
            "('data:image/png;base64,...'), a medmo://images/<id> handle, or the "
            "medmo://results/<id> URI of an earlier result to reuse its image without "
            "re-sending pixels."
        )
    ),
]
WindowArg = Annotated[
    str | None,
    Field(
        description=(
            "CT/MR intensity window: lung, mediastinum, bone, brain, abdomen, liver, "
            "soft_tissue, 'WIDTH/LEVEL' (e.g. '400/40'), 'file' (the DICOM's own) or "
            "'auto'. Ignored for photos and plain PNG/JPEG."
        )
    ),
]
SliceArg = Annotated[
    int | None,
    Field(ge=0, description="Slice index of a volume or DICOM series (default: the middle)."),
]
FrameArg = Annotated[
    int | None, Field(ge=0, description="Frame index of a multi-frame DICOM (default: first).")
]
PlaneArg = Annotated[
    Literal["axial", "coronal", "sagittal"] | None,
    Field(description="Plane to slice a NIfTI volume in (default: axial)."),
]
MaxTokensArg = Annotated[
    int | None,
    Field(ge=1, description="Cap on generated tokens (default: the server's, usually 512)."),
]
OptionsArg = Annotated[
    list[str] | None,
    Field(description="Answer choices for a multiple-choice question, without letters."),
]

_ANNOTATIONS = {
    name: ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )
    for name, title in {
        "vqa": "Ask MedMO about a medical image",
        "ground": "Localise findings with boxes",
        "report": "Write a radiology report",
        "reason": "Step-by-step clinical reasoning",
        "classify": "Label a medical image",
        "detect": "Detect and count objects",
        "summarize_report": "Summarise a report",
        "text_qa": "Answer a clinical question",
    }.items()
}


def _image_opts(window: Any, slice: Any, frame: Any, plane: Any) -> dict[str, Any]:
    return {"window": window, "slice": slice, "frame": frame, "plane": plane}


def _args(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


async def vqa(
    image: ImageArg,
    question: Annotated[str, Field(min_length=1, description="The question about the image.")],
    ctx: Context,
    options: OptionsArg = None,
    question_type: Annotated[
        Literal["open", "closed", "multiple_choice"] | None,
        Field(
            description="open (free text), closed (yes/no) or multiple_choice; inferred "
            "when omitted."
        ),
    ] = None,
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, VQAResult]:
    """Answer a question about a medical image (X-ray, CT, MRI, ultrasound, pathology,
    dermatology, fundus, microscopy) with MedMO, a medical vision-language model.

    Use for direct visual questions: "Is there a pleural effusion?", "Which organ is
    shown?", "What is the abnormality in the left lung?". For yes/no questions the answer
    comes back in `yes_no`; give `options` for multiple choice and the chosen letter comes
    back in `choice`. For a full read of a study use `report`; for where a finding is,
    use `ground`; for a question that needs several reasoning steps, use `reason`.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="vqa",
            arguments=_args(
                image=image,
                question=question,
                options=options,
                question_type=question_type,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            work=lambda tk, img, hooks: tk.vqa(
                img, question, options=options, question_type=question_type, **hooks
            ),
        ),
    )


async def ground(
    image: ImageArg,
    ctx: Context,
    targets: Annotated[
        list[str] | None,
        Field(
            description="What to localise, e.g. ['nodule', 'left lung']; omit to find all "
            "abnormalities."
        ),
    ] = None,
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, GroundingResult]:
    """Localise findings or anatomy in a medical image with labelled bounding boxes.

    Use to answer "where": where a lesion, fracture, nodule or organ is. Boxes come back in
    the original image's pixel coordinates (x1, y1, x2, y2, origin top-left) and
    normalised 0-1, with sizes in mm when the pixel spacing is known. The image is also
    returned with the boxes drawn on it. `found` is false when the model saw nothing.
    For many small objects of one kind (cells, bacteria) use `detect` instead.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="ground",
            arguments=_args(
                image=image,
                targets=targets,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            overlay=True,
            work=lambda tk, img, hooks: tk.ground(img, targets, **hooks),
        ),
    )


async def report(
    image: ImageArg,
    ctx: Context,
    context: Annotated[
        str | None,
        Field(
            description="Clinical context to take into account, e.g. '67M, cough for 3 "
            "weeks, smoker'. Never include names or record numbers."
        ),
    ] = None,
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, ReportResult]:
    """Write a radiology report for a medical image: Findings and Impression sections.

    Use for a complete read of a study when no specific question is asked, or as the
    first step of a review. The report is a draft by a research model, not a diagnosis:
    present it as such. Follow up on specific findings with `ground` or `vqa`.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="report",
            arguments=_args(
                image=image,
                context=context,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            work=lambda tk, img, hooks: tk.report(img, context=context, **hooks),
        ),
    )


async def reason(
    image: ImageArg,
    question: Annotated[str, Field(min_length=1, description="The clinical question.")],
    ctx: Context,
    context: Annotated[
        str | None,
        Field(description="Clinical context (age, sex, symptoms, history); no identifiers."),
    ] = None,
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, ReasoningResult]:
    """Reason step by step about a medical image towards an answer to a clinical question.

    Use when the question needs more than a glance: a differential diagnosis, the most
    likely cause of a finding, whether findings fit a history. The model's reasoning comes
    back in `thinking` and `steps`, its conclusion in `answer`. Give a generous
    `max_new_tokens` (e.g. 1024): reasoning is long.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="reason",
            arguments=_args(
                image=image,
                question=question,
                context=context,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            work=lambda tk, img, hooks: tk.reason(img, question, context=context, **hooks),
        ),
    )


async def classify(
    image: ImageArg,
    ctx: Context,
    labels: Annotated[
        list[str] | None,
        Field(
            description="Candidate labels; omit for the 15 NIH ChestX-ray14 labels "
            "(Atelectasis, Cardiomegaly, ..., No Finding)."
        ),
    ] = None,
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, ClassificationResult]:
    """Assign labels to a medical image, from a candidate list or the chest X-ray default.

    Use for screening questions ("which of these conditions are present?"). Several labels
    may apply; `no_finding` is true when the model says the image is normal. Answer terms
    that match no candidate are listed in `unmatched`.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="classify",
            arguments=_args(
                image=image,
                labels=labels,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            work=lambda tk, img, hooks: tk.classify(img, labels, **hooks),
        ),
    )


async def detect(
    image: ImageArg,
    ctx: Context,
    label: Annotated[
        str, Field(min_length=1, description="What to detect: cell, bacteria, nucleus, lesion, ...")
    ] = "cell",
    window: WindowArg = None,
    slice: SliceArg = None,
    frame: FrameArg = None,
    plane: PlaneArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, DetectionResult]:
    """Detect and count many small objects of one kind (cells, bacteria, nuclei, lesions).

    Use for microscopy and pathology counts. Returns a box per object (original-image
    pixels and normalised 0-1), counts per label, and the image with the boxes drawn.
    Dense images may need a larger `max_new_tokens` (each box costs about 20 tokens).
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="detect",
            arguments=_args(
                image=image,
                label=label,
                window=window,
                slice=slice,
                frame=frame,
                plane=plane,
                max_new_tokens=max_new_tokens,
            ),
            image=image,
            image_opts=_image_opts(window, slice, frame, plane),
            max_new_tokens=max_new_tokens,
            overlay=True,
            work=lambda tk, img, hooks: tk.detect(img, label, **hooks),
        ),
    )


async def summarize_report(
    report_text: Annotated[
        str, Field(min_length=1, description="The report text to summarise (no identifiers).")
    ],
    ctx: Context,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, SummaryResult]:
    """Extract the key findings of a radiology report text and summarise it in a sentence.

    Use on a report written by `report` or pasted by the user, to get its findings as a
    list for follow-up. Takes text only, no image.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="summarize_report",
            arguments=_args(report_text=report_text, max_new_tokens=max_new_tokens),
            max_new_tokens=max_new_tokens,
            work=lambda tk, _img, hooks: tk.summarize(report_text, **hooks),
        ),
    )


async def text_qa(
    question: Annotated[str, Field(min_length=1, description="The medical question.")],
    ctx: Context,
    options: OptionsArg = None,
    max_new_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, TextQAResult]:
    """Answer a medical knowledge question without an image (board-exam style, PubMedQA).

    Use for questions about anatomy, disease, drugs or guidelines that do not depend on
    a particular image. Give `options` for multiple choice; the chosen letter comes back
    in `choice`.
    """
    return await run_tool(
        ctx,
        ToolCall(
            name="text_qa",
            arguments=_args(question=question, options=options, max_new_tokens=max_new_tokens),
            max_new_tokens=max_new_tokens,
            work=lambda tk, _img, hooks: tk.text_qa(question, options=options, **hooks),
        ),
    )


_TOOLS = {
    "vqa": vqa,
    "ground": ground,
    "report": report,
    "reason": reason,
    "classify": classify,
    "detect": detect,
    "summarize_report": summarize_report,
    "text_qa": text_qa,
}


def register_tools(server: MCPServer) -> None:
    """Add the eight MedMO tools to ``server``."""
    for name, fn in _TOOLS.items():
        annotations = _ANNOTATIONS[name]
        server.add_tool(
            fn,
            name=name,
            title=annotations.title,
            description=inspect.cleandoc(fn.__doc__ or ""),
            annotations=annotations,
        )
