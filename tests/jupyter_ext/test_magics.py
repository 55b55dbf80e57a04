"""The magics, driven through IPython's InteractiveShell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from jupyter_ext.agent_panel import AgentPanel
from jupyter_ext.panels import TaskPanel


def test_load_ext_registers_the_medmo_magics(shell):
    magics = shell.magics_manager.magics
    assert "medmo_model" in magics["line"]
    assert "medmo" in magics["line"]
    assert "medmo" in magics["cell"]


def test_ground_magic_shows_the_boxes_on_the_image(shell, chest_png):
    panel = shell.run_line_magic("medmo", f'ground {chest_png} nodule "pleural effusion"')
    assert isinstance(panel, TaskPanel)
    result = panel.wait(30)
    assert [b.label for b in result.boxes] == ["nodule", "effusion", "nodule"]
    assert result.targets == ["nodule", "pleural effusion"]
    assert len(panel.viewer.canvas.boxes) == 3
    assert panel.viewer.canvas.image_width == 256 and panel.viewer.canvas.image_height == 200
    assert "nodule" in panel.result_html.value and "Error" not in panel.status.value


def test_ask_magic_returns_at_once_and_fills_in_from_a_worker_thread(shell, chest_png):
    panel = shell.run_line_magic("medmo", f"ask {chest_png} Is there a pleural effusion?")
    result = panel.wait(30)
    assert result.question == "Is there a pleural effusion?"
    assert result.answer == "yes"
    assert panel.job.done and "done in" in panel.status.value
    assert "yes" in panel.result_html.value


def test_wait_option_blocks_until_the_task_is_done(shell, chest_png):
    panel = shell.run_line_magic("medmo", f"report {chest_png} --wait")
    assert panel.job.done and panel.result.task == "report"


def test_a_missing_image_shows_a_red_error_and_the_kernel_stays_usable(shell, tmp_path):
    missing = tmp_path / "nope.png"
    panel = shell.run_line_magic("medmo", f"ask {missing} Anything? --wait")
    assert panel.result is None
    assert "medmo-error" in panel.status.value and "nope.png" in panel.status.value
    assert shell.run_cell("1 + 1").result == 2


def test_a_question_task_without_a_question_is_an_error_in_the_widget(shell, chest_png):
    panel = shell.run_line_magic("medmo", f"ask {chest_png} --wait")
    assert "needs a question" in panel.status.value


def test_unknown_tasks_and_bad_options_are_usage_errors(shell, chest_png):
    with pytest.raises(UsageError, match="Unknown task"):
        shell.run_line_magic("medmo", f"segment {chest_png}")
    with pytest.raises(UsageError):
        shell.run_line_magic("medmo", f"ground {chest_png} --slice notanumber")
    with pytest.raises(UsageError, match="quotation"):
        shell.run_line_magic("medmo", f'ground {chest_png} "unclosed')


def test_medmo_model_configures_the_session_once_per_kernel(shell, scripted_session, capsys):
    shell.run_line_magic("medmo_model", "--backend scripted --model my-model")
    assert scripted_session.settings.model == "my-model"
    assert "my-model" in capsys.readouterr().out
    panel = shell.run_line_magic("medmo_model", "--load")
    panel.wait(30)
    toolkit = scripted_session.toolkit
    shell.run_line_magic("medmo", "")  # help only
    assert scripted_session.toolkit is toolkit  # loaded once, reused
    assert "ready" in panel.value


def test_medmo_model_switches_to_an_mcp_server_and_back(shell, scripted_session):
    shell.run_line_magic("medmo_model", "--mcp http://127.0.0.1:9/mcp")
    assert scripted_session.describe() == "MCP server http://127.0.0.1:9/mcp"
    shell.run_line_magic("medmo_model", "--local")
    assert scripted_session.mcp_url is None


def test_an_unreachable_mcp_server_is_a_clear_error_in_the_widget(shell, chest_png):
    shell.run_line_magic("medmo_model", "--mcp http://127.0.0.1:9/mcp")
    panel = shell.run_line_magic("medmo", f"ask {chest_png} Anything? --wait")
    assert "Cannot reach the MCP server" in panel.status.value


def test_cell_magic_runs_the_workflow_with_the_cell_as_question(shell, chest_png):
    panel = shell.run_cell_magic(
        "medmo", f"agent {chest_png} --workflow --wait", "What is the most likely diagnosis?\n"
    )
    assert isinstance(panel, AgentPanel)
    trace = panel.wait(60)
    assert trace.question == "What is the most likely diagnosis?"
    assert trace.final is not None and trace.stopped is None
    # every recorded step is listed; the final one is the highlighted conclusion
    listed = [s.number for s in panel.viewer.steps]
    assert listed == [s.number for s in trace.steps]
    assert len(panel.viewer.step_widgets) == len(trace.steps) - 1
    assert "medmo-conclusion" in panel.viewer.conclusion.value
    assert any(
        "ground" in w.get_title(0) and "3 box(es)" in w.get_title(0)
        for w in panel.viewer.step_widgets
    )


def test_the_stop_button_ends_an_agent_run_and_the_viewer_says_so(scripted_session, chest_png):
    panel = AgentPanel(chest_png, "Any nodule?", workflow=True, start=False)

    def press_stop(step) -> None:
        if step.kind == "tool_result":
            panel.cancel_button.click()

    panel.trace.on_step(press_stop)
    trace = panel.start().wait(60)
    assert trace.stopped == "cancelled"
    assert [s.workflow_step for s in trace.steps if s.kind == "tool_result"] == ["identify"]
    assert "stopped early: cancelled" in panel.viewer.status.value
    assert "Stopped: the run was cancelled" in panel.viewer.conclusion.value


def test_the_real_model_path_answers_through_the_magic(tiny_settings, chest_png):
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_ext.session import MedmoSession, reset_session

    session = reset_session(MedmoSession(tiny_settings))
    try:
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_ext")
        panel = shell.run_line_magic("medmo", f"ask {chest_png} Is this a chest X-ray? --wait")
        assert panel.error is None
        assert panel.result.model == tiny_settings.model
        assert panel.result.usage.completion_tokens > 0
        assert panel.viewer.canvas.image_src.startswith("data:image/png;base64,")
        assert session.loaded
    finally:
        reset_session()


def test_max_new_tokens_caps_the_task_it_is_given_to(shell, scripted_session, chest_png):
    panel = shell.run_line_magic("medmo", f"ask {chest_png} Is it? --max-new-tokens 7 --wait")
    assert panel.result.answer == "yes"
    backend = scripted_session.toolkit.backend
    assert backend.requests[-1].max_new_tokens == 7
    with pytest.raises(UsageError, match="%medmo_model --max-new-tokens"):
        shell.run_cell_magic("medmo", f"agent {chest_png} --max-new-tokens 7", "Why?")
