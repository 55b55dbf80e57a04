"""Prompts for common workflows: a client offers them as ready-made requests
(slash commands in some clients) that chain MedMO's tools in a sensible order."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

__all__ = ["register_prompts"]

_CAVEAT = (
    "MedMO is a research model: present its output as a draft for a clinician to check, "
    "not a diagnosis, and say where the tools disagree or are unsure."
)


def review_chest_xray(image: str) -> str:
    """Review a chest X-ray step by step: labels, boxes, report, then a reasoned summary."""
    return (
        f"Review the chest X-ray at {image} step by step with the MedMO tools.\n"
        f"1. Call `classify` with image={image!r} to screen for the 14 common thoracic "
        "findings.\n"
        "2. For each finding, call `ground` with its name as a target to localise it; reuse "
        "the image through the `result_uri` of step 1 instead of re-sending it.\n"
        "3. Call `report` for a full Findings/Impression read.\n"
        "4. If the steps disagree, call `reason` with a question about the disagreement.\n"
        "Finish with a short summary: findings, where they are, and how certain each is. " + _CAVEAT
    )


def review_ct_slice(image: str, window: str = "lung", slice: str = "") -> str:
    """Review one CT slice: window it, describe it, localise what stands out."""
    where = f" slice={slice}," if slice else ""
    return (
        f"Review the CT study at {image} ({window} window,{where or ' middle slice,'} axial).\n"
        f"1. Call `report` with image={image!r}, window={window!r}"
        + (f", slice={slice}" if slice else "")
        + ".\n"
        "2. Call `ground` on the same image (pass the report's `result_uri` as `image`) for "
        "each abnormality the report names.\n"
        "3. If a finding matters for the question at hand, try another window (e.g. "
        "mediastinum, bone) with `vqa`.\n"
        "Summarise the findings with their locations in pixels and mm. " + _CAVEAT
    )


def count_cells(image: str, label: str = "cell") -> str:
    """Detect and count cells (or bacteria, nuclei) in a microscopy image."""
    return (
        f"Count the {label}s in the microscopy image at {image}.\n"
        f"Call `detect` with image={image!r} and label={label!r}; report the count per label "
        "and show the overlay image. If the count looks truncated (the answer hit the token "
        "limit), call it again with a larger `max_new_tokens`. " + _CAVEAT
    )


def second_opinion(image: str, question: str) -> str:
    """Answer a clinical question about an image with a direct answer and reasoning."""
    return (
        f"Question about the image at {image}: {question}\n"
        f"1. Call `vqa` with image={image!r} and the question for a direct answer.\n"
        "2. Call `reason` with the same question (reuse the image via the `result_uri` of "
        "step 1) for step-by-step reasoning.\n"
        "Compare the two; if they disagree, say so and explain which is better supported. "
        + _CAVEAT
    )


def register_prompts(server: MCPServer) -> None:
    """Add the workflow prompts to ``server``."""
    server.prompt(title="Review a chest X-ray step by step")(review_chest_xray)
    server.prompt(title="Review a CT slice")(review_ct_slice)
    server.prompt(title="Count cells in a microscopy image")(count_cells)
    server.prompt(title="Second opinion on a clinical question")(second_opinion)
