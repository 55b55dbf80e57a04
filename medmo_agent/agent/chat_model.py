"""MedMO as a LangChain chat model, over any project backend.

:class:`ChatMedMO` takes LangChain messages (text and image content blocks), asks the
backend, and returns an ``AIMessage``. With :meth:`ChatMedMO.bind_tools` it offers tools
in the Qwen chat template's format and parses ``<tool_call>`` blocks from the output into
``AIMessage.tool_calls``; a block that cannot be read lands in ``invalid_tool_calls``
with the reason, so an agent can ask the model to try again instead of failing.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from ..backends.base import Backend, Completion, GenerationRequest
from .convert import to_project_messages
from .tool_calls import ParsedOutput, ToolCallStreamSplitter, parse_tool_calls

__all__ = ["ChatMedMO"]

_FORCE_TOOL = "\n\nYou must answer with at least one <tool_call> now."


class ChatMedMO(BaseChatModel):
    """MedMO (or any project backend) as a LangChain chat model.

    Args:
        backend: The project backend that generates text (local transformers model,
            OpenAI-compatible server, or the scripted test double).
        toolkit: Loads images named in messages (paths, ``data:`` URIs, ``medmo://``
            handles) with its allowed-folder rules; built on ``backend`` when omitted.
        max_new_tokens: Cap on generated tokens per call (backend default when ``None``).
        temperature: Sampling temperature (backend default, greedy, when ``None``).

    Example:
        >>> from medmo_agent.backends.scripted import ScriptedBackend
        >>> chat = ChatMedMO(backend=ScriptedBackend(["A chest X-ray."]))
        >>> chat.invoke("What is this?").content
        'A chest X-ray.'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any = Field(description="The project Backend that generates text.")
    toolkit: Any = None
    max_new_tokens: int | None = None
    temperature: float | None = None

    @property
    def _llm_type(self) -> str:
        return "medmo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        backend: Backend = self.backend
        return {"backend": backend.name, "model": backend.model_id}

    # ---- tools -------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable:
        """Offer tools to the model, rendered in the Qwen template's ``# Tools`` section.

        Args:
            tools: LangChain tools, functions, pydantic models or OpenAI tool dicts.
            tool_choice: ``None``/``"auto"`` lets the model choose; ``"none"`` offers no
                tools; ``"any"``/``"required"`` or a tool name asks it to call one.
            **kwargs: Further call options bound alongside.
        """
        schemas = [convert_to_openai_tool(t) for t in tools]
        return super().bind(tools=schemas, tool_choice=tool_choice, **kwargs)

    # ---- generation --------------------------------------------------------------------

    def _load_image(self, ref: str):
        if self.toolkit is None:
            from ..toolkit import Toolkit

            self.toolkit = Toolkit(backend=self.backend)
        return self.toolkit.load(ref)

    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
        kwargs: dict[str, Any],
    ) -> GenerationRequest:
        offered = tools if tools and tool_choice != "none" else None
        project = to_project_messages(messages, load_image=self._load_image, tools=offered)
        if offered and tool_choice not in (None, "auto") and project:
            last = project[-1]
            if last.role == "user":
                if isinstance(last.content, str):
                    last.content += _FORCE_TOOL
                else:
                    from ..types import TextPart

                    last.content = [*last.content, TextPart(_FORCE_TOOL)]
        return GenerationRequest(
            messages=project,
            max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            stop=stop,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(messages, stop, tools, tool_choice, kwargs)
        on_text = run_manager.on_llm_new_token if run_manager else None
        completion = self.backend.generate(request, on_text=on_text, cancel=kwargs.get("cancel"))
        parsed = parse_tool_calls(completion.text) if tools else ParsedOutput(completion.text)
        message = AIMessage(
            content=parsed.content,
            tool_calls=[
                tool_call(name=c.name, args=c.arguments, id=c.id) for c in parsed.tool_calls
            ],
            invalid_tool_calls=[
                invalid_tool_call(name=c.name, args=c.raw, id=c.id, error=c.error)
                for c in parsed.invalid_calls
            ],
            usage_metadata=_usage(completion),
            response_metadata=_metadata(completion, parsed),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, tools, tool_choice, kwargs)
        pieces: queue.Queue[Any] = queue.Queue()
        done = object()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["completion"] = self.backend.generate(
                    request, on_text=pieces.put, cancel=kwargs.get("cancel")
                )
            except BaseException as exc:  # re-raised in the consumer's thread
                outcome["error"] = exc
            finally:
                pieces.put(done)

        threading.Thread(target=run, daemon=True, name="medmo-chat-stream").start()
        splitter = ToolCallStreamSplitter() if tools else None
        while (item := pieces.get()) is not done:
            text = splitter.feed(item) if splitter else item
            if text:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        if "error" in outcome:
            raise outcome["error"]
        completion: Completion = outcome["completion"]
        tail = splitter.flush() if splitter else ""
        parsed = parse_tool_calls(completion.text) if tools else ParsedOutput(completion.text)
        chunks = [
            tool_call_chunk(name=c.name, args=json.dumps(c.arguments), id=c.id, index=i)
            for i, c in enumerate(parsed.tool_calls)
        ]
        # JSON-quoted so LangChain's chunk merging keeps them invalid (not a dict).
        chunks += [
            tool_call_chunk(name=c.name, args=json.dumps(c.raw), id=c.id, index=len(chunks) + i)
            for i, c in enumerate(parsed.invalid_calls)
        ]
        final = AIMessageChunk(
            content=tail,
            tool_call_chunks=chunks,
            usage_metadata=_usage(completion),
            response_metadata=_metadata(completion, parsed),
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=final)


def _usage(c: Completion) -> dict[str, int]:
    return {
        "input_tokens": c.prompt_tokens,
        "output_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    }


def _metadata(c: Completion, parsed: ParsedOutput) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "model_name": c.model,
        "model_provider": "medmo",
        "backend": c.backend,
        "finish_reason": c.finish_reason,
        "seconds": round(c.total_seconds, 4),
        "raw_text": c.text,
    }
    if parsed.invalid_calls:
        meta["tool_call_errors"] = [
            {"id": x.id, "name": x.name, "error": x.error} for x in parsed.invalid_calls
        ]
    return meta
