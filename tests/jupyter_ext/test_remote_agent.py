"""``%%medmo agent IMAGE --workflow`` after ``%medmo_model --mcp URL``: the workflow's tools
are those of a real ``python -m mcp_server --http`` subprocess (scripted backend), driven
from a headless IPython shell."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from servers import free_port, start_process

from jupyter_ext.agent_panel import AgentPanel
from jupyter_ext.jobs import wait_all
from medmo_agent.agent.workflow import DEFAULT_STEPS
from medmo_agent.testing import scripted_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BOX_REPLY = "Lesion <box>[[20, 10, 90, 60]]</box>"


def _answers_post(url: str) -> bool:
    """Whether the endpoint answers a (deliberately empty) POST: the server is up."""
    try:
        return httpx.post(url, content=b"{}", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the server may read images from."""
    return tmp_path_factory.mktemp("remote-images")


@pytest.fixture
def remote_png(image_dir: Path, chest_png: Path) -> Path:
    """The test's image, inside the server's allowed folder."""
    path = image_dir / chest_png.name
    path.write_bytes(chest_png.read_bytes())
    return path


@pytest.fixture(scope="module")
def mcp_url(image_dir: Path):
    """A scripted MCP server over streamable HTTP that may read ``image_dir``."""
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_server", "--http", "--port", str(port)]
    cmd += ["--backend", "scripted"]
    cmd += ["--allow-dir", str(image_dir)]
    url = f"http://127.0.0.1:{port}/mcp"
    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **scripted_env(BOX_REPLY)}
    with start_process(
        cmd, ready_check=lambda: _answers_post(url), env=env, cwd=REPO, timeout=60
    ) as proc:
        yield url
        assert proc.alive(), proc.log_text()


def test_the_workflow_cell_magic_runs_on_an_mcp_servers_tools_and_lists_every_step(
    shell, scripted_session, remote_png, mcp_url
):
    earlier = set(wait_all(timeout=120))  # failures of earlier tests are not this test's
    shell.run_line_magic("medmo_model", f"--mcp {mcp_url}")
    panel = shell.run_cell_magic(
        "medmo", f"agent {remote_png} --workflow", "What is the most likely diagnosis?\n"
    )
    assert isinstance(panel, AgentPanel)
    failed = [job for job in wait_all(timeout=120) if job not in earlier]

    assert failed == [], [job.error for job in failed]
    assert panel.job.done and panel.job.error is None
    trace = panel.trace
    assert trace.question == "What is the most likely diagnosis?"
    assert trace.tools_source == f"mcp:{mcp_url}"
    assert trace.final is not None and trace.stopped is None
    # every workflow step ran, through the server's tools, without a tool error
    results = [s for s in trace.steps if s.kind == "tool_result"]
    assert [s.workflow_step for s in results if s.workflow_step] == list(DEFAULT_STEPS)
    assert all(s.status == "ok" for s in results), [s.text for s in results]
    localize = next(s for s in results if s.workflow_step == "localize")
    assert localize.tool == "ground" and len(localize.boxes) == 1
    # the viewer lists every step, the conclusion is highlighted, and no error is shown
    assert [s.number for s in panel.viewer.steps] == [s.number for s in trace.steps]
    titles = [w.get_title(0) for w in panel.viewer.step_widgets]
    for step in DEFAULT_STEPS:
        assert any(f"[{step}]" in t for t in titles), (step, titles)
    assert not any("error" in t for t in titles), titles
    assert any("ground [localize] · 1 box(es)" in t for t in titles), titles
    assert "medmo-error" not in panel.viewer.status.value
    assert f"{len(trace.steps)} steps in" in panel.viewer.status.value
    assert "medmo-conclusion" in panel.viewer.conclusion.value
    assert panel.cancel_button.layout.display == "none"


def test_the_agent_cell_magic_plans_with_the_kernels_model_over_the_mcp_servers_tools(
    shell, scripted_session, remote_png, mcp_url
):
    earlier = set(wait_all(timeout=120))  # failures of earlier tests are not this test's
    shell.run_line_magic("medmo_model", f"--mcp {mcp_url}")
    panels = [
        shell.run_cell_magic("medmo", f"agent {remote_png}", "Is there a nodule?\n")
        for _ in range(2)
    ]
    failed = [job for job in wait_all(timeout=120) if job not in earlier]

    assert failed == [], [job.error for job in failed]
    for panel in panels:
        trace = panel.trace
        assert trace.mode == "agent" and trace.tools_source == f"mcp:{mcp_url}"
        # the kernel's scripted planner (the session's reply rules) answers at once
        assert [s.kind for s in trace.steps] == ["final"] and trace.stopped is None
        assert trace.conclusion == "yes"
        assert "medmo-error" not in panel.viewer.status.value
        assert "yes" in panel.viewer.conclusion.value
    # one planner model for the kernel, offered the server's tools on every run
    planner = scripted_session.planner_backend
    assert len(planner.requests) == 2
    for request in planner.requests:
        system = request.messages[0].text
        assert all(f'"name": "{tool}"' in system for tool in ("vqa", "ground", "report"))
