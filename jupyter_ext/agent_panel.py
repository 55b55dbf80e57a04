"""AgentPanel: run the agent or the diagnostic workflow and watch its trace fill in.

The run happens in a worker thread; each step the run records appears in a
:class:`TraceViewer` the moment it happens. ``panel.trace`` is the
:class:`~medmo_agent.agent.trace.Trace`, complete once ``panel.wait()`` returns.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from .jobs import Job
from .trace_viewer import TraceViewer

__all__ = ["AgentPanel", "run_agent"]


def run_agent(
    session: Any,
    image: Any,
    question: str,
    *,
    workflow: bool = False,
    trace: Any = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Run the tool-calling agent (or, with ``workflow``, the deterministic workflow).

    Args:
        session: The notebook session whose toolkit the run uses.
        image: The image argument (path, folder, handle).
        question: The clinical question.
        workflow: Run :class:`DiagnosticWorkflow` instead of the agent.
        trace: The trace to record into (steps stream to its listeners).
        cancel: Set to stop the run between steps.

    Returns:
        The finished trace.
    """
    if getattr(session, "mcp_url", None):
        import asyncio

        return asyncio.run(_run_remote(session, image, question, workflow, trace, cancel))
    if workflow:
        from medmo_agent.agent.workflow import DiagnosticWorkflow

        runner: Any = DiagnosticWorkflow(toolkit=session.toolkit)
    else:
        from medmo_agent.agent.agent import create_medmo_agent

        runner = create_medmo_agent(toolkit=session.toolkit)
    return runner.run(image, question, trace=trace, cancel=cancel)


async def _run_remote(
    session: Any,
    image: Any,
    question: str,
    workflow: bool,
    trace: Any,
    cancel: threading.Event | None = None,
) -> Any:
    """The run with the MCP server's tools (the agent's planner still runs here)."""
    from medmo_agent.agent.mcp import describe_target, mcp_tools

    # the trace names the server, as ``medmo agent --mcp`` does, not just "mcp"
    source = describe_target(session.mcp_url)
    async with mcp_tools(session.mcp_url, token=session.mcp_token) as tools:
        if workflow:
            from medmo_agent.agent.workflow import DiagnosticWorkflow

            runner: Any = DiagnosticWorkflow(tools, tools_source=source)
        else:
            from medmo_agent.agent.agent import create_medmo_agent

            # the planner is the kernel's own model, loaded once (the tools are remote)
            runner = create_medmo_agent(
                tools=tools,
                backend=session.planner_backend,
                settings=session.settings,
                tools_source=source,
            )
        return await runner.arun(str(image), question, trace=trace, cancel=cancel)


class AgentPanel(widgets.VBox):
    """A live trace of an agent or workflow run on one image.

    Args:
        image: Path, DICOM folder, data URI or ``medmo://`` handle.
        question: The clinical question (may be empty for the workflow).
        workflow: Use the deterministic diagnostic workflow instead of the agent.
        session: The notebook session (default: the kernel's).
        start: Start at once (default).
    """

    def __init__(
        self,
        image: Any,
        question: str = "",
        *,
        workflow: bool = False,
        session: Any = None,
        start: bool = True,
    ):
        from medmo_agent.agent.trace import Trace

        from .session import get_session

        self.session = session if session is not None else get_session()
        self.image_arg = image
        self.question = question
        self.workflow = workflow
        self.trace = Trace(
            mode="workflow" if workflow else "agent",
            question=question,
            image=str(image),
        )
        self.viewer = TraceViewer(
            title=question or ("Diagnostic workflow" if workflow else "Agent run"),
            load_image=self.session.load,
        )
        self.viewer.follow(self.trace)
        self.cancel_button = widgets.Button(
            description="Stop", icon="stop", button_style="warning", layout={"width": "90px"}
        )
        self.cancel_button.on_click(lambda _: self.cancel())
        self.job: Job | None = None
        super().__init__([self.cancel_button, self.viewer])
        self.add_class("medmo-agent-panel")
        if start:
            self.start()

    def start(self) -> AgentPanel:
        """Start the run in a worker thread; returns at once."""
        self.viewer.status.value = self.viewer.status.value or ""
        # Assigned before the worker starts, so Stop works from the very first step.
        self.job = Job(self._work, on_done=self._finish, name="agent")
        self.job.start()
        return self

    def _work(self, cancel: threading.Event) -> Any:
        return run_agent(
            self.session,
            self.image_arg,
            self.question,
            workflow=self.workflow,
            trace=self.trace,
            cancel=cancel,
        )

    def _finish(self, job: Job) -> None:
        self.cancel_button.layout.display = "none"
        trace = job.result if job.error is None and job.result is not None else self.trace
        self.viewer.finish(trace, error=job.error)

    def cancel(self) -> None:
        """Ask the run to stop."""
        if self.job is not None:
            self.job.cancel()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; returns the trace (re-raises the run's error)."""
        assert self.job is not None
        result = self.job.wait(timeout)
        return result if result is not None else self.trace
