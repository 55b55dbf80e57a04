"""Every surface offers every task of the registry with the same arguments, descriptions
and defaults: the Python toolkit, MCP tools, LangChain tools, CLI subcommands, review
steps, the notebook's remote toolkit and ``%medmo``."""

from __future__ import annotations

import inspect

import pytest
from mcp import Client

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.tasks.registry import TASKS

TASK_LIST = list(TASKS.values())


def _json_default(param):
    return None if param.required else param.default


@pytest.mark.parametrize("task", TASK_LIST, ids=lambda t: t.name)
def test_the_toolkit_method_has_the_declared_signature_and_documents_every_argument(task):
    from medmo_agent.toolkit import Toolkit

    method = getattr(Toolkit, task.name)
    params = list(inspect.signature(method).parameters.values())[1:]  # self
    assert [p.name for p in params] == [p.name for p in task.parameters] + ["on_text", "cancel"]
    for declared, offered in zip(task.parameters, params, strict=False):
        assert offered.default == declared.default
        assert f"{declared.name}: {declared.description}" in method.__doc__
    assert task.returns in method.__doc__


async def test_the_mcp_tools_are_the_registry_with_its_descriptions_and_defaults(tmp_path):
    from mcp_server import ServerConfig, create_server
    from medmo_agent.config import Settings

    server = create_server(
        Settings(), ServerConfig(allowed_dirs=(tmp_path,)), backend=ScriptedBackend(replies=["x"])
    )
    async with Client(server) as client:
        listed = (await client.list_tools()).tools
    # the model's tools; MCP Apps keeps the viewer's app-only render tool for its view
    tools = {t.name: t for t in listed if (t.meta or {}).get("ui", {}).get("visibility") != ["app"]}
    assert list(tools) == list(TASKS)
    for task in TASK_LIST:
        tool = tools[task.name]
        assert tool.title == task.title
        viewer = (tool.meta or {}).get("ui", {}).get("resourceUri")
        assert (viewer is not None) == task.viewer, task.name
        assert tool.description == task.tool_description
        props = tool.input_schema["properties"]
        assert list(props) == [p.name for p in task.parameters]
        assert sorted(tool.input_schema.get("required", [])) == sorted(
            p.name for p in task.parameters if p.required
        )
        for p in task.parameters:
            assert props[p.name]["description"] == p.description
            assert props[p.name].get("default") == _json_default(p)


@pytest.mark.parametrize("task", TASK_LIST, ids=lambda t: t.name)
def test_the_langchain_tool_is_the_registry_less_the_planners_length_budget(task):
    from medmo_agent.agent.tools import toolkit_tools
    from medmo_agent.toolkit import Toolkit

    (tool,) = toolkit_tools(Toolkit(backend=ScriptedBackend(replies=["x"])), [task.name])
    assert tool.name == task.name
    assert tool.description == task.tool_description
    schema = tool.args_schema.model_json_schema()
    expected = [p for p in task.parameters if p.name != "max_new_tokens"]
    assert list(schema["properties"]) == [p.name for p in expected]
    for p in expected:
        assert schema["properties"][p.name]["description"] == p.description
        assert schema["properties"][p.name].get("default") == _json_default(p)


@pytest.mark.parametrize("task", TASK_LIST, ids=lambda t: t.name)
def test_the_cli_subcommand_takes_every_argument_under_its_name_and_aliases(task):
    from medmo_agent.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in (task.name, *task.aliases):
        command = sub.choices[name]
        actions = {a.dest: a for a in command._actions}
        for p in task.parameters:
            action = actions[p.name]
            assert action.help == (p.cli.help or p.description)
            if not p.required and p.value_type is not bool:
                assert action.default == p.default


@pytest.mark.parametrize("task", TASK_LIST, ids=lambda t: t.name)
def test_a_review_step_names_the_task_and_sets_its_own_arguments(task):
    from medmo_agent.review.steps import TASKS as STEP_KINDS
    from medmo_agent.review.steps import TaskStep

    assert {task.name, *task.aliases} <= set(STEP_KINDS)
    fields = TaskStep.model_fields
    for p in task.parameters:
        if p.is_image or p.name in ("window", "slice", "frame", "plane"):
            continue
        assert p.name in fields
        assert fields[p.name].description == p.description or p.name == "max_new_tokens"


@pytest.mark.parametrize("task", TASK_LIST, ids=lambda t: t.name)
def test_the_notebook_offers_the_task_locally_and_through_a_remote_server(task):
    from jupyter_ext.magics import _TASK_HELP
    from jupyter_ext.panels import TASKS as PANEL_TASKS
    from jupyter_ext.remote import RemoteToolkit

    remote = list(inspect.signature(getattr(RemoteToolkit, task.name)).parameters)[1:]
    assert remote == [p.name for p in task.parameters] + ["on_text", "cancel"]
    if task.takes_image:
        assert PANEL_TASKS[task.name] is task
        assert all(PANEL_TASKS[alias] is task for alias in task.aliases)
        assert f"  {'/'.join((task.name, *task.aliases))} IMAGE" in _TASK_HELP
