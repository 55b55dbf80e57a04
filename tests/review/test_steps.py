"""Step lists and plans: parsing, case defaults, boxes carried between steps."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.review import AgentPlan, TaskListPlan, WorkflowPlan, parse_task_steps, run_review
from medmo_agent.review.plans import resolve_plan

from .conftest import write_cases, write_png


def test_shorthand_full_and_compact_forms_give_the_same_steps():
    compact = parse_task_steps("ground:nodule|mass, vqa:Is it benign?, report")
    written = parse_task_steps(
        [{"ground": ["nodule", "mass"]}, {"task": "vqa", "question": "Is it benign?"}, "report"]
    )
    assert compact == written
    assert compact[0].targets == ["nodule", "mass"]
    assert [s.task for s in compact] == ["ground", "vqa", "report"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("segment", "Step 1"),
        ([{"ground": "x", "vqa": "y"}], "exactly one task"),
        ([{"task": "report", "for_each": "box"}], "for_each: box applies to vqa and reason"),
        ([{"task": "vqa", "for_each": "box"}], "needs a question"),
        ([], "non-empty list"),
    ],
)
def test_malformed_steps_are_input_errors_that_say_how_to_write_them(spec, message):
    with pytest.raises(InputError, match=message):
        parse_task_steps(spec)


def test_plans_resolve_from_names_files_and_lists(tmp_path):
    assert isinstance(resolve_plan(None), WorkflowPlan)
    assert isinstance(resolve_plan("agent"), AgentPlan)
    assert resolve_plan({"workflow": {"max_findings": 2}}).spec == {"workflow": {"max_findings": 2}}
    steps_file = tmp_path / "steps.yaml"
    steps_file.write_text("steps:\n  - ground: nodule\n  - report\n")
    plan = resolve_plan(str(steps_file))
    assert isinstance(plan, TaskListPlan)
    assert plan.spec == [{"task": "ground", "targets": ["nodule"]}, {"task": "report"}]
    with pytest.raises(InputError, match="Cannot read steps file"):
        resolve_plan(str(tmp_path / "none.yaml"))


def test_a_for_each_box_step_asks_about_every_box_found_on_that_image(
    tmp_path, scripted, scripted_settings
):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "c.yaml",
        [{"id": "c", "image": "a.png", "context": "67M"}],
        steps=[
            {"ground": "nodule"},
            {"vqa": "Describe the {label} at {box} ({context}).", "for_each": "box"},
        ],
    )
    rec = run_review(cases, backend=scripted, settings=scripted_settings).records[0]
    ask = rec.steps[-1]
    assert (ask.task, ask.box_index, ask.image) == ("vqa", 0, 0)
    assert ask.inputs["question"] == "Describe the nodule at [40, 40, 100, 100] (67M)."
    assert rec.outputs["box_answers"][0]["answer"] == "A round opacity."


def test_question_steps_default_to_the_case_questions_on_their_own_images(
    tmp_path, scripted, scripted_settings
):
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=2)
    cases = write_cases(
        tmp_path / "c.yaml",
        [
            {
                "id": "two",
                "images": ["a.png", "b.png"],
                "questions": [{"question": "Is there a nodule?", "image": 1}, "Which side?"],
            },
            {"id": "none", "image": "a.png"},
        ],
    )
    result = run_review(
        cases, steps="vqa,reason,summarize", backend=scripted, settings=scripted_settings
    )
    two = [s for s in result["two"].steps if s.task == "vqa"]
    assert [(s.question_index, s.image) for s in two] == [(0, 1), (1, 0)]
    none = result["none"].steps
    assert [(s.task, s.status) for s in none] == [
        ("load", "ok"),
        ("vqa", "skipped"),  # no question to ask
        ("reason", "ok"),  # reasoning falls back to the likely diagnosis
        ("summarize", "skipped"),  # no report to summarise
    ]


def test_a_step_on_an_image_the_case_lacks_fails_that_case_only(
    tmp_path, scripted, scripted_settings
):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "c.yaml",
        [{"id": "one", "image": "a.png"}, {"id": "two", "images": ["a.png", "a.png"]}],
    )
    result = run_review(
        cases, steps=[{"task": "report", "image": 1}], backend=scripted, settings=scripted_settings
    )
    assert result["one"].status == "failed" and "has 1" in result["one"].error["message"]
    assert result["two"].status == "ok"
