"""The evaluation report: published vs measured, modes, breakdowns, failures, bugs, provenance."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medmo_agent.errors import InputError
from medmo_agent.evaluation.paired import paired_bootstrap
from medmo_agent.evaluation.published import FIGURES, PUBLISHED, tables_for
from medmo_agent.evaluation.report import write_report
from medmo_agent.evaluation.report_tables import wilson
from medmo_agent.evaluation.rundir import read_items, read_run
from medmo_agent.rendering import escape

from .run_fixture import make_run


def _row(html: str, bench: str, metric: str = "acc") -> str:
    found = re.search(rf"<tr data-benchmark='{bench}' data-metric='{metric}'>(.*?)</tr>", html)
    assert found, f"no comparison row for {bench} {metric}"
    return found.group(1)


@pytest.fixture()
def report(tmp_path) -> str:
    path = write_report(make_run(tmp_path / "run"))
    assert path == tmp_path / "run" / "report.html"
    return path.read_text(encoding="utf-8")


def test_wilson_interval_hand_worked():
    low, high = wilson(2, 4)
    assert (low, high) == pytest.approx((0.15004, 0.84996), abs=1e-4)
    assert wilson(0, 0) is None and wilson(5, 4) is None
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)


def test_published_tables_are_declared_with_sources_and_never_guessed():
    assert all(t.source and t.url for t in PUBLISHED)
    assert {(f.benchmark, f.metric) for f in FIGURES} >= {
        k for t in PUBLISHED for k in t.values
    }  # every published figure has a row
    four_b = tables_for("MBZUAI/MedMO-4B-Next")
    assert [t.model for t in four_b] == ["MBZUAI/MedMO-4B-Next"]
    assert four_b[0].value("vqa_rad", "acc") is None  # not published, not invented
    assert [t.model for t in tables_for("/models/MedMO-8B-Next/")] == ["MBZUAI/MedMO-8B-Next"] * 2
    assert tables_for("/tmp/tiny-medmo") == list(PUBLISHED)
    paper, card = tables_for("MBZUAI/MedMO-8B-Next")
    assert paper.value("vqa_rad", "close_acc") == 86.4 and card.value("vqa_rad", "acc") == 65.0
    assert paper.value("medqa", "acc") == card.value("medqa", "acc") == 83.8
    assert card.value("bacteria", "mean_iou") is None


def test_measured_figures_sit_beside_both_published_ones_with_differences_flagged(report):
    # pubmedqa: 10 of 40 right (the failed item does not count); 75.6 is far outside
    pubmed = _row(report, "pubmedqa")
    assert "<td class='num'>40</td><td class='num'>25.0</td>" in pubmed
    assert "<td class='num'>75.6</td><td class='num diff-out'>-50.6</td>" in pubmed
    # vqa_rad all: 3 of 6, a wide interval: both published figures are inside it
    all_row = _row(report, "vqa_rad")
    assert "<td class='num'>68.0</td><td class='num diff-in'>-18.0</td>" in all_row
    assert "<td class='num'>65.0</td><td class='num diff-in'>-15.0</td>" in all_row
    # vqa_rad closed: 2 of 4, interval 15.0-85.0: the paper's 86.4 lies outside it
    closed = _row(report, "vqa_rad", "close_acc")
    assert "<td>15.0 – 85.0</td>" in closed
    assert "<td class='num'>86.4</td><td class='num diff-out'>-36.4</td>" in closed
    assert "<td class='num'>80.4</td><td class='num diff-in'>-30.4</td>" in closed
    assert "data-benchmark='mmmu_med'" not in report  # not run, no row
    assert "huggingface.co/MBZUAI/MedMO-8B-Next" in report


def test_a_model_without_per_benchmark_figures_shows_not_published(tmp_path):
    html = write_report(make_run(tmp_path / "r", model="MBZUAI/MedMO-4B-Next")).read_text()
    assert "<td class='muted'>not published</td>" in _row(html, "pubmedqa")
    assert "averages (VQA 68.5, text QA 55.0)" in html


def test_two_modes_on_the_same_items_give_a_paired_difference(report, tmp_path):
    run = read_run(tmp_path / "run")
    direct = [i["correct"] for i in run.modes["vqa_rad"]["direct"].items]
    agent = [i["correct"] for i in run.modes["vqa_rad"]["agent"].items]
    expected = paired_bootstrap(direct, agent, seed=7)
    assert (expected.only_a, expected.only_b, expected.difference) == (0, 2, pytest.approx(1 / 3))

    row = re.search(r"<tr><td>vqa_rad</td><td>direct vs agent</td>(.*?)</tr>", report)
    assert row, "no paired row"
    cells = row.group(1)
    assert "<td class='num'>6</td><td class='num'>50.0</td><td class='num'>83.3</td>" in cells
    assert "+33.3" in cells
    assert f"{expected.ci_low * 100:+.1f} – {expected.ci_high * 100:+.1f} (95%)" in cells
    assert "<td class='num'>0</td><td class='num'>2</td>" in cells


def test_paired_json_of_the_run_is_used_when_present(tmp_path):
    root = make_run(tmp_path / "r")
    diff = {"n": 6, "accuracy_a": 0.5, "accuracy_b": 0.5, "difference": 0.0, "ci_low": -0.1,
            "ci_high": 0.1, "confidence": 0.9, "only_a": 1, "only_b": 1}  # fmt: skip
    (root / "paired.json").write_text(json.dumps({"vqa_rad": {"direct vs agent": diff}}))
    html = write_report(root).read_text()
    assert "-10.0 – +10.0 (90%)" in html


def test_breakdowns_by_kind_question_type_and_modality(report):
    vqa = report.split("data-benchmark='vqa_rad' data-mode='direct'>", 1)[1].split("</div>")[0]
    assert "open: 1/2 = 50.0% · open bleu1 0.500, rougel 0.500, f1 0.500" in vqa
    kinds = vqa.split("data-by='closed / open'>", 1)[1].split("</table>")[0]
    assert "<td>closed</td><td class='num'>4</td><td class='num'>4</td><td class='num'>2</td>" in (
        kinds
    )
    assert "<td>open</td><td class='num'>2</td><td class='num'>2</td><td class='num'>1</td>" in (
        kinds
    )
    modality = vqa.split("data-by='modality'>", 1)[1].split("</table>")[0]
    assert "<td>CT</td><td class='num'>3</td><td class='num'>3</td><td class='num'>2</td>" in (
        modality
    )
    slake = report.split("data-benchmark='slake' data-mode='direct'>", 1)[1].split("</div>")[0]
    assert "data-by='question type'" in slake  # closed and open
    pubmed = report.split("data-benchmark='pubmedqa' data-mode='direct'>", 1)[1]
    assert "data-by=" not in pubmed.split("</div>")[0]  # one kind only: nothing to break down


def test_failed_items_and_judge_failures_are_listed_escaped(report):
    failed = report.split("<section id='failed'>", 1)[1].split("</section>")[0]
    assert "Failed items (2)" in failed
    assert "pubmedqa-40" in failed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failed
    assert "<script>" not in report
    assert "judge: BackendError: judge unreachable" in failed


def test_scoring_names_each_bug_whether_it_touches_the_run_and_that_it_is_fixed(report, tmp_path):
    bugs = report.split("<table id='bugs'>", 1)[1].split("</table>")[0]
    touched = dict(re.findall(r"<tr data-bug='(\w+)'>.*?<td>(yes|no)</td>", bugs))
    assert touched == {
        "OPEN_ACC_DIVIDED_TWICE": "yes",
        "F1_LABELS_PERMUTED": "yes",
        "PATHVQA_JUDGE_CLOSED_ZERO": "no",
        "SLAKE_JUDGE_CLOSED_TWICE": "yes",  # slake items carry judge verdicts
        "MMMU_OPEN_CHARACTERS": "no",
    }
    assert bugs.count(">fixed</span>") == 5
    assert "judged by an LLM (judge-model)" in report
    compat = write_report(make_run(tmp_path / "c", compat="medevalkit")).read_text()
    assert compat.count(">reproduced</span>") == 5
    assert "--compat medevalkit (MedEvalKit&#x27;s bugs reproduced)" in compat


def test_provenance_lists_model_revision_backend_versions_seed_and_sources(report):
    prov = report.split("<section id='provenance'>", 1)[1].split("</section>")[0]
    for text in (
        "<th>model</th><td>MBZUAI/MedMO-8B-Next</td>",
        "<th>revision</th><td>0123abc</td>",
        "<th>backend</th><td>transformers</td>",
        "<th>seed</th><td>7</td>",
        "<th>modes</th><td>[&quot;direct&quot;, &quot;agent&quot;]</td>",
        "medmo-agent 0.1.0, torch 2.9.0, transformers 5.0.0",
        "<th>finished</th><td>2026-12-04T01:05:00+00:00</td>",
        "<td>flaviagiammarino/vqa-rad</td><td>test</td><td class='num'>6</td>",
    ):
        assert text in prov


def test_the_report_is_self_contained_with_png_plots(report):
    assert "<script" not in report and "<link" not in report
    sources = re.findall(r"src='([^']*)'", report)
    assert len(sources) == 3  # comparison, paired, modes
    for uri in sources:
        assert uri.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.width >= 400


def test_reporting_does_not_touch_the_plotting_backend_and_imports_matplotlib_lazily(tmp_path):
    code = (
        "import sys, matplotlib\n"
        "import medmo_agent.evaluation.report as r\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        f"r.write_report({str(make_run(tmp_path / 'r'))!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    lazy = "import sys, medmo_agent.evaluation.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", lazy], check=True, timeout=60)


def test_a_torn_last_line_is_skipped_and_other_damage_is_a_clear_error(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a"}\n{"item_id": "b"}\n{"item_id": "c", "corr')
    assert [i["item_id"] for i in read_items(path)] == ["a", "b"]
    path.write_text('{"item_id": "a"}\nnot json\n{"item_id": "c"}\n')
    with pytest.raises(InputError, match="line 2 is not JSON"):
        read_items(path)


def test_a_folder_without_results_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(InputError, match="No evaluation output folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as info:
        write_report(tmp_path / "empty")
    assert "medmo eval" in info.value.fix


def test_a_partial_run_without_run_json_or_metrics_still_reports(tmp_path):
    root = make_run(tmp_path / "r")
    (root / "run.json").unlink()
    (root / "pubmedqa" / "direct" / "metrics.json").unlink()
    html = write_report(root).read_text()
    assert "run.json is missing" in html
    assert "metrics.json not written yet" in html
    assert "<td class='muted'>not run</td>" in _row(html, "pubmedqa")
    # without run.json the modes come in name order: agent first
    assert "agent vs direct" in html
    assert Path(root / "report.html").is_file()


def test_a_grounding_benchmark_is_set_against_the_published_iou_with_per_label_figures(tmp_path):
    from medmo_agent.evaluation.grounding import GroundingItem, grounding_metrics

    root = make_run(tmp_path / "r")
    items = [
        GroundingItem("bacteria", [(0, 0, 10, 10)], [(0, 0, 10, 10)]),
        GroundingItem("bacteria", [(0, 0, 10, 5)], [(0, 0, 10, 10), (50, 50, 60, 60)]),
        GroundingItem("cell", [(0, 0, 4, 4), (9, 9, 10, 10)], [(0, 0, 4, 4)]),
    ]
    folder = root / "bacteria" / "direct"
    folder.mkdir(parents=True)
    records = [
        {"item_id": f"b-{n}", "question_type": "grounding", "correct": n != 1, "error": None}
        for n in range(3)
    ]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "metrics.json").write_text(json.dumps(grounding_metrics(items)))

    html = write_report(root).read_text()

    row = _row(html, "bacteria", "mean_iou")
    mean = (1 + 0.5 + 0 + 1) / 4 * 100
    assert f"<td class='num'>4</td><td class='num'>{mean:.1f}</td><td></td>" in row
    assert f"<td class='num'>56.1</td><td class='num'>{mean - 56.1:+.1f}</td>" in row
    assert "<td class='muted'>not published</td>" in row  # the card has no grounding figure
    per_label = html.split("<table class='per-label'>", 1)[1].split("</table>")[0]
    assert "<th>found at IoU 0.5 (%)</th>" in per_label
    assert (
        "<td>bacteria</td><td class='num'>2</td><td class='num'>3</td><td class='num'>0</td>"
        "<td class='num'>50.0</td><td class='num'>66.7</td>"
    ) in per_label
    assert "<td>cell</td><td class='num'>1</td><td class='num'>1</td><td class='num'>1</td>" in (
        per_label
    )


def test_paths_in_error_messages_are_labelled_unless_asked_for(tmp_path):
    from medmo_agent.privacy import path_label

    root = make_run(tmp_path / "r")
    items = root / "pubmedqa" / "direct" / "items.jsonl"
    secret = "/data/patients/Jane_Doe_1961/chest.png"
    lines = items.read_text().splitlines()
    record = json.loads(lines[-1])
    url = "http://127.0.0.1:8000/v1/chat/completions"
    record["error"] = f"ImageLoadError: cannot read {secret}: truncated; server {url}"
    items.write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")

    hidden = write_report(root, include_paths=False).read_text()
    assert "Jane_Doe" not in hidden
    assert f"cannot read {path_label(secret)}: truncated; server {url}" in hidden  # URL kept
    shown = write_report(root, include_paths=True).read_text()
    assert f"cannot read {secret}: truncated" in shown


def test_a_run_that_answered_nothing_still_gets_a_report_saying_why(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    run = {"model": "m", "modes": ["workflow"], "skipped_modes": [["pubmedqa", "workflow"]]}
    (root / "run.json").write_text(json.dumps(run))
    html = write_report(root).read_text()
    assert "No benchmark results in this run. Skipped (benchmark, mode): pubmedqa workflow." in html
    assert "<section id='provenance'>" in html


@given(right=st.integers(0, 500), extra=st.integers(0, 500))
def test_the_wilson_interval_holds_the_observed_rate_within_zero_and_one(right, extra):
    n = right + extra
    interval = wilson(right, n)
    if n == 0:
        assert interval is None
        return
    low, high = interval
    assert 0.0 <= low <= right / n + 1e-12 and right / n - 1e-12 <= high <= 1.0
    assert high - low > 0


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=40))
def test_any_item_id_and_error_text_is_shown_escaped(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("esc")
    folder = root / "pubmedqa" / "direct"
    folder.mkdir(parents=True)
    record = {"item_id": text, "question_type": "multiple_choice", "error": "<b>" + text}
    (folder / "items.jsonl").write_text(json.dumps(record) + "\n")
    # read as written: text mode would turn a "\r" in the item id into "\n"
    html = write_report(root, include_paths=True).read_bytes().decode("utf-8")
    failed = html.split("<table id='failed-table'>", 1)[1].split("</table>")[0]
    assert f"<td>{escape(text)}</td><td>&lt;b&gt;{escape(text)}</td>" in failed
