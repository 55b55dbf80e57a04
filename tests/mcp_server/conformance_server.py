"""The MedMO MCP server plus the fixtures the official conformance suite looks for.

The suite (``@modelcontextprotocol/conformance``) calls tools, reads resources and gets
prompts with fixed names (``test_simple_text``, ``test://static-text``,
``test_simple_prompt``, ...). They exist only here, in the test suite: this module builds
the real server (:func:`mcp_server.create_server` over the scripted backend), adds the
fixtures to it, and serves it over streamable HTTP exactly as ``medmo serve --http``
does (:func:`mcp_server.serve_http`). Everything the suite checks beyond the fixtures'
own answers (the handshake, sessions, stateless requests, errors, progress, completions,
DNS-rebinding protection, caching) is the shipped server's behaviour.

Run as a script: ``python conformance_server.py --port N --allow-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

#: A 1x1 PNG and a tiny WAV header: the suite checks type and MIME type, not pixels.
PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0g"
    "AAAABJRU5ErkJggg=="
)
WAV_EMPTY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

#: A tool input schema using the 2020-12 keywords the suite checks survive ``tools/list``.
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

_NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _ask(message: str, schema: dict[str, Any] | None = None) -> ElicitRequest:
    return ElicitRequest(
        params=ElicitRequestFormParams(message=message, requested_schema=schema or _NAME_SCHEMA)
    )


def _sample(text: str, max_tokens: int = 64) -> CreateMessageRequest:
    return CreateMessageRequest(
        params=CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=text))],
            max_tokens=max_tokens,
        )
    )


class _Person(BaseModel):
    """What the suite's client fills in when asked."""

    username: str = Field(default="", description="User name")
    email: str = Field(default="", description="E-mail address")


class _Defaults(BaseModel):
    """Every primitive type with a default (SEP-1034)."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active",
        description="User status",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    verified: bool = Field(default=True, description="Verification status")


class _Enums(BaseModel):
    """The enum schema variants of SEP-1330."""

    untitledSingle: str = Field(
        description="Simple enum", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    titledSingle: str = Field(
        description="Titled enum",
        json_schema_extra={
            "oneOf": [
                {"const": "low", "title": "Low Priority"},
                {"const": "medium", "title": "Medium Priority"},
                {"const": "high", "title": "High Priority"},
            ]
        },
    )
    untitledMulti: list[str] = Field(
        description="Multi-select",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Titled multi-select",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "feature", "title": "New Feature"},
                    {"const": "bug", "title": "Bug Fix"},
                    {"const": "docs", "title": "Documentation"},
                ]
            }
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={
            "enum": ["small", "medium", "large"],
            "enumNames": ["Small Size", "Medium Size", "Large Size"],
        },
    )


def _placeholder() -> str:
    """Added and removed again by the list-change fixtures."""
    return "placeholder"


def _add_tools(server: MCPServer) -> None:
    tool = server.tool

    @tool()
    def test_simple_text() -> str:
        """Answers with one text block."""
        return "This is a simple text response for testing."

    @tool()
    def test_image_content() -> list[ImageContent]:
        """Answers with one PNG image block."""
        return [ImageContent(type="image", data=PNG_1PX, mime_type="image/png")]

    @tool()
    def test_audio_content() -> list[AudioContent]:
        """Answers with one WAV audio block."""
        return [AudioContent(type="audio", data=WAV_EMPTY, mime_type="audio/wav")]

    @tool()
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Answers with an embedded text resource."""
        text = TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return [EmbeddedResource(type="resource", resource=text)]

    @tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Answers with text, an image and an embedded resource."""
        data = TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text='{"test": "data", "value": 123}',
        )
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG_1PX, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=data),
        ]

    @tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three log messages while it runs."""
        for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.log("info", text)
        return "Tool with logging executed successfully"

    @tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50 and 100 of 100."""
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        meta = ctx.request_context.meta
        return str(meta.get("progress_token") if meta else 0)

    @tool()
    def test_error_handling() -> str:
        """Always fails, as a tool error (isError) the model can read."""
        raise ToolError("This tool intentionally returns an error for testing")

    @tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's model to complete ``prompt``."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        return f"LLM response: {content.text if content.type == 'text' else 'No response'}"

    @tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user one question."""
        answer = await ctx.elicit(message=message, schema=_Person)
        data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
        return f"User response: action={answer.action}, content={data}"

    @tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Asks for a form whose fields all have defaults."""
        answer = await ctx.elicit(message="Please provide user information", schema=_Defaults)
        data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
        return f"Elicitation result: action={answer.action}, content={data}"

    @tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Asks for a form with every enum variant."""
        answer = await ctx.elicit(message="Please select values", schema=_Enums)
        data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
        return f"Elicitation completed: action={answer.action}, content={data}"

    @tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Needs the client's sampling capability; refuses with -32021 without it."""
        caps = ctx.session.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool needs the client's 'sampling' capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "The client declared sampling."

    @tool()
    def test_x_mcp_header(
        region: Annotated[
            str,
            Field(
                description="Mirrored into the Mcp-Param-Region header",
                json_schema_extra={"x-mcp-header": "Region"},
            ),
        ] = "<none>",
    ) -> str:
        """Has a parameter mirrored into an ``Mcp-Param-*`` header (SEP-2243)."""
        return f"region={region}"

    @tool(name="json_schema_2020_12_tool")
    def json_schema_2020_12_tool() -> str:
        """Lists an input schema using JSON Schema 2020-12 keywords."""
        return "json_schema_2020_12_tool"

    # MCPServer derives schemas from signatures; this one is written out by hand, so it
    # replaces the derived one on the registered tool.
    server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = SCHEMA_2020_12

    @tool()
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Adds and removes a tool, then tells subscribed clients the list changed."""
        server.add_tool(_placeholder, name="test_dynamic_tool")
        server.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        return "tool list changed"

    @tool()
    async def test_trigger_prompt_change(ctx: Context) -> str:
        """Adds and removes a prompt, then tells subscribed clients the list changed."""
        server.add_prompt(Prompt.from_function(_placeholder, name="test_dynamic_prompt"))
        server.remove_prompt("test_dynamic_prompt")
        await ctx.notify_prompts_changed()
        return "prompt list changed"

    _add_input_required_tools(server)


def _add_input_required_tools(server: MCPServer) -> None:
    """Tools that ask the client for input the 2026-07-28 way (an input-required result)."""
    tool = server.tool

    @tool()
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        """Asks for a name, then greets."""
        answer = (ctx.input_responses or {}).get("user_name")
        if isinstance(answer, ElicitResult):
            return f"Hello, {(answer.content or {}).get('name', 'stranger')}!"
        return InputRequiredResult(input_requests={"user_name": _ask("What is your name?")})

    @tool()
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        """Asks the client's model a question, then repeats its answer."""
        answer = (ctx.input_responses or {}).get("capital_question")
        if isinstance(answer, CreateMessageResult):
            content = answer.content
            return f"Model said: {content.text if content.type == 'text' else '?'}"
        question = _sample("What is the capital of France?", 100)
        return InputRequiredResult(input_requests={"capital_question": question})

    @tool()
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        """Asks for the client's roots, then counts them."""
        answer = (ctx.input_responses or {}).get("client_roots")
        if isinstance(answer, ListRootsResult):
            return f"Client exposed {len(answer.roots)} root(s)."
        return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})

    @tool()
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        """Round-trips an opaque request state."""
        if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "state-nonce":
            return "state-ok: confirmation received"
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        return InputRequiredResult(
            input_requests={"confirm": _ask("Please confirm", schema)}, request_state="state-nonce"
        )

    @tool()
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> str | InputRequiredResult:
        """Asks for an answer, a sample and the roots in one round."""
        if {"user_name", "greeting", "client_roots"} <= (ctx.input_responses or {}).keys():
            return "All inputs received."
        requests: dict[str, InputRequest] = {
            "user_name": _ask("What is your name?"),
            "greeting": _sample("Generate a greeting"),
            "client_roots": ListRootsRequest(),
        }
        return InputRequiredResult(input_requests=requests, request_state="multiple-inputs")

    @tool()
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        """Three rounds: a name, then a colour, then the answer."""
        state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
        responses = ctx.input_responses or {}
        step1, step2 = responses.get("step1"), responses.get("step2")
        if state["round"] == 1 and isinstance(step1, ElicitResult):
            colour = {"type": "object", "properties": {"color": {"type": "string"}}}
            return InputRequiredResult(
                input_requests={"step2": _ask("Step 2: What is your favorite color?", colour)},
                request_state=json.dumps({"round": 2, "name": (step1.content or {}).get("name")}),
            )
        if state["round"] == 2 and isinstance(step2, ElicitResult):
            return f"{state.get('name')} likes {(step2.content or {}).get('color')}."
        return InputRequiredResult(
            input_requests={"step1": _ask("Step 1: What is your name?")},
            request_state=json.dumps({"round": 1}),
        )

    @tool()
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        """Issues a request state; the server must refuse it when altered."""
        if ctx.request_state is None:
            schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            return InputRequiredResult(
                input_requests={"confirm": _ask("Please confirm", schema)}, request_state="round-1"
            )
        return f"state-ok: {ctx.request_state}"

    @tool()
    async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
        """Asks only for what the client said it supports."""
        caps = ctx.client_capabilities
        requests: dict[str, InputRequest] = {}
        if caps is None or caps.sampling is not None:
            requests["sample"] = _sample("Say hello")
        if caps is None or caps.elicitation is not None:
            requests["ask"] = _ask("What is your name?")
        return InputRequiredResult(input_requests=requests, request_state="capability-gated")


def _add_resources(server: MCPServer) -> None:
    @server.resource("test://static-text", mime_type="text/plain")
    def static_text() -> str:
        """A fixed text resource."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A fixed binary resource (a PNG)."""
        return base64.b64decode(PNG_1PX)

    @server.resource("test://template/{id}/data", mime_type="application/json")
    def template_data(id: str) -> str:
        """A templated resource echoing its id."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", mime_type="text/plain")
    def watched() -> str:
        """A resource a client may subscribe to."""
        return "Watched resource content"


def _add_prompts(server: MCPServer) -> None:
    @server.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A prompt without arguments."""
        text = TextContent(type="text", text="This is a simple prompt for testing.")
        return [UserMessage(role="user", content=text)]

    @server.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """A prompt with two required arguments."""
        text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [UserMessage(role="user", content=TextContent(type="text", text=text))]

    @server.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """A prompt that embeds a resource."""
        embedded = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        follow = TextContent(type="text", text="Please process the embedded resource above.")
        return [
            UserMessage(role="user", content=EmbeddedResource(type="resource", resource=embedded)),
            UserMessage(role="user", content=follow),
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt that carries an image."""
        image = ImageContent(type="image", data=PNG_1PX, mime_type="image/png")
        follow = TextContent(type="text", text="Please analyze the image above.")
        return [UserMessage(role="user", content=image), UserMessage(role="user", content=follow)]

    @server.prompt()
    async def test_input_required_result_prompt(
        ctx: Context,
    ) -> list[UserMessage] | InputRequiredResult:
        """A prompt that first asks the user for context."""
        answer = (ctx.input_responses or {}).get("user_context")
        if isinstance(answer, ElicitResult):
            text = f"Use the following context: {(answer.content or {}).get('context', '?')}"
            return [UserMessage(role="user", content=TextContent(type="text", text=text))]
        schema = {"type": "object", "properties": {"context": {"type": "string"}}}
        return InputRequiredResult(
            input_requests={"user_context": _ask("What context should the prompt use?", schema)}
        )


def add_conformance_fixtures(server: MCPServer) -> MCPServer:
    """Add the suite's fixture tools, resources and prompts to ``server``; returns it."""
    _add_tools(server)
    _add_resources(server)
    _add_prompts(server)
    return server


def main() -> None:
    """Serve the MedMO server with the fixtures on loopback until interrupted."""
    from mcp_server import ServerConfig, create_server
    from mcp_server.http_app import serve_http
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--allow-dir", type=Path, required=True)
    args = parser.parse_args()
    config = ServerConfig(transport="http", port=args.port, allowed_dirs=(args.allow_dir,))
    server = create_server(Settings(), config, backend=ScriptedBackend(["yes"]))
    asyncio.run(serve_http(add_conformance_fixtures(server), config))


if __name__ == "__main__":
    main()
