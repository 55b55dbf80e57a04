"""How a mode answers one item: ``direct``, ``reason``, ``workflow`` or ``agent``.

- ``direct``: one model call the MedEvalKit way: no system prompt, one user turn with the
  image(s) then the prompt (several images each preceded by ``<image_N>: ``), greedy.
- ``reason``: the ``reason`` task (MedMO's ``<think>``/``<answer>`` format) on the prompt
  that asks for the answer in ``\\boxed{}``; text-only items use the same messages without
  an image.
- ``workflow``: the diagnostic workflow (the review's ``workflow`` plan); its reasoning
  step's answer is scored.
- ``agent``: the tool-calling agent (the review's ``agent`` plan); its conclusion is scored.

The workflow and the agent look at an image: they do not run text-only benchmarks.
Grounding items are asked in ``direct`` mode only, through the ``ground`` task's messages
(:mod:`.grounding_bench`). Every answerer returns the raw text that is scored (for
grounding with the image size the model saw); it raises on failure (the runner records
the item as failed and goes on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError
from .items import EvalItem, ImageSource

if TYPE_CHECKING:
    from ..toolkit import Toolkit
    from ..types import MedImage, Message

__all__ = ["IMAGE_MODES", "MODES", "Mode", "check_mode", "make_answerer", "reasoning_prompt"]

Mode = Literal["direct", "reason", "workflow", "agent"]
MODES: tuple[Mode, ...] = ("direct", "reason", "workflow", "agent")
IMAGE_MODES: frozenset[str] = frozenset({"workflow", "agent"})
"""Modes that need an image (text-only benchmarks are skipped in them)."""

Answerer = Callable[[EvalItem], "str | tuple[str, tuple[int, int] | None]"]


def check_mode(mode: str) -> Mode:
    """Validate a mode name.

    Raises:
        InputError: not one of :data:`MODES`.
    """
    for known in MODES:
        if mode == known:
            return known
    raise InputError(
        f"Unknown evaluation mode {mode!r}.",
        input=mode,
        fix=f"Use one of: {', '.join(MODES)}.",
    )


def reasoning_prompt(mode: str) -> bool:
    """Whether a mode asks with the ``\\boxed{}`` (reasoning) prompt."""
    return mode != "direct"


def to_med_image(image: ImageSource, settings: Any) -> MedImage:
    """An item's image as the toolkit's image, through the ordinary loader (caps apply)."""
    from ..imaging import load_image

    return load_image(image.read_bytes(settings), settings=settings)


def direct_messages(item: EvalItem, images: list[MedImage]) -> list[Message]:
    """MedEvalKit's messages: one user turn, the image(s) then the text; no system prompt."""
    from ..types import ImagePart, Message, TextPart

    parts: list[TextPart | ImagePart] = []
    if len(images) == 1:
        parts.append(ImagePart(images[0]))
    else:
        for i, img in enumerate(images, start=1):
            parts += [TextPart(f"<image_{i}>: "), ImagePart(img)]
    parts.append(TextPart(item.prompt))
    return [Message("user", parts)]


def make_answerer(mode: str, toolkit: Toolkit, max_new_tokens: int) -> Answerer:
    """The function that answers items in ``mode`` with ``toolkit``'s backend.

    Args:
        mode: one of :data:`MODES`.
        toolkit: the toolkit (its backend is shared by all threads).
        max_new_tokens: the cap per model call.
    """
    mode = check_mode(mode)
    settings = toolkit.settings
    if mode == "direct":
        from ..backends.base import GenerationRequest

        def direct(item: EvalItem) -> str | tuple[str, tuple[int, int] | None]:
            if item.grounding is not None:
                from .grounding_bench import ground_answer

                return ground_answer(toolkit, item, max_new_tokens)
            images = [to_med_image(im, settings) for im in item.images]
            request = GenerationRequest(
                direct_messages(item, images), max_new_tokens=max_new_tokens, temperature=0.0
            )
            return toolkit.backend.generate(request).text

        return direct
    if mode == "reason":
        return _reason_answerer(toolkit, max_new_tokens)
    return _trace_answerer(mode, toolkit, max_new_tokens)


def _reason_answerer(toolkit: Toolkit, max_new_tokens: int) -> Answerer:
    from ..backends.base import GenerationRequest
    from ..tasks.reason import build_messages

    settings = toolkit.settings

    def reason(item: EvalItem) -> str:
        prompt = item.prompt_for(True)
        if item.images:  # the registry's task, as every surface runs it
            image = to_med_image(item.images[0], settings)
            result = toolkit.reason(image, prompt, max_new_tokens=max_new_tokens)
            return str(result.raw_text)
        request = GenerationRequest(
            build_messages(None, prompt), max_new_tokens=max_new_tokens, temperature=0.0
        )
        return toolkit.backend.generate(request).text

    return reason


def _trace_answerer(mode: str, toolkit: Toolkit, max_new_tokens: int) -> Answerer:
    from ..review.plans import steps_from_trace

    if mode == "workflow":
        from ..agent import DiagnosticWorkflow

        runner: Any = DiagnosticWorkflow(toolkit=toolkit, max_new_tokens=max_new_tokens)
    else:
        from ..agent import create_medmo_agent
        from ..toolkit import Toolkit

        # the planner's turns and its tools take their cap from the toolkit's settings
        capped = toolkit.settings.replace(
            max_new_tokens=min(max_new_tokens, toolkit.settings.max_new_tokens_limit)
        )
        agent_toolkit = Toolkit(backend=toolkit.backend, settings=capped, resolver=toolkit.resolver)
        from ..agent.chat_model import ChatMedMO

        planner = ChatMedMO(
            backend=toolkit.backend, toolkit=agent_toolkit, max_new_tokens=capped.max_new_tokens
        )
        runner = create_medmo_agent(planner, toolkit=agent_toolkit)
    settings = toolkit.settings

    def traced(item: EvalItem) -> str:
        if not item.images:
            raise InputError(
                f"Mode {mode!r} looks at an image; item {item.item_id!r} has none.",
                input=item.benchmark,
                fix="Run text-only benchmarks with --mode direct or --mode reason.",
            )
        handle = toolkit.resolver.register(to_med_image(item.images[0], settings))
        trace = runner.run(handle, item.prompt_for(True))
        final = [r for r in steps_from_trace(trace, 0, kind=mode) if r.task == mode]
        if not final:
            raise RuntimeError(f"the {mode} run ended without a conclusion")
        rec = final[-1]
        if rec.status == "failed":
            raise RuntimeError((rec.error or {}).get("message") or f"the {mode} run stopped")
        return str((rec.result or {}).get("answer") or "")

    return traced
