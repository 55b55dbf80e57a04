"""A grounding benchmark through the runner: COCO-style fixture, the ``ground`` task's
prompt, boxes scored by IoU, metrics in metrics.json and the report's Bacteria row."""

from __future__ import annotations

import json

import pytest

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.cli import main
from medmo_agent.config import Settings
from medmo_agent.errors import InputError
from medmo_agent.evaluation.records import EvalStore
from medmo_agent.evaluation.runner import run_eval
from medmo_agent.evaluation.sources import load_items

# the model's answers, in the pixels it saw: b1 (200x200) is seen as 256x256 (x1.28),
# b2 (256x256) as it is
REPLIES = {
    ((200, 200), "rod"): "rod [[32, 32, 128, 96]]",  # exactly (25, 25, 100, 75): IoU 1
    ((200, 200), "coccus"): "coccus [[160, 128, 224, 224]]",  # (125,100,175,175): IoU 2/3
    # one true rod found exactly, the other missed, and one box where nothing is
    ((256, 256), "rod"): "rod [[100, 10, 150, 60]], rod [[170, 120, 190, 150]]",
}


def _reply(request: GenerationRequest) -> str:
    (image,) = request.images
    text = request.messages[-1].text
    label = text.split("in this image: ")[1].split(".")[0]
    return REPLIES[image.size, label]


def test_known_boxes_give_exact_iou_figures_per_item_per_label_and_in_the_report(
    tmp_path, bench_data
):
    out = tmp_path / "run"
    backend = ScriptedBackend(responder=_reply)
    kw = dict(data_dir=bench_data, settings=Settings())
    result = run_eval("bacteria", out, modes=["direct", "reason"], backend=backend, **kw)
    assert result.skipped_modes == [("bacteria", "reason")]
    # the ground task's messages: its system prompt, the image, the label asked for
    asked = "Detect the following anatomical regions or findings in this image: "
    assert all(r.messages[0].role == "system" for r in backend.requests)
    labels = sorted(r.messages[-1].text.split(asked)[1].split(".")[0] for r in backend.requests)
    assert labels == ["coccus", "rod", "rod"]  # concurrent, so in no fixed order

    recs = {r.item_id: r for r in result.records["bacteria"]["direct"]}
    assert set(recs) == {"1:rod", "1:coccus", "2:rod"}
    assert recs["1:rod"].input_size == (256, 256)
    assert recs["1:rod"].verdict["per_label"] == {"rod": [1.0]}
    assert recs["1:coccus"].verdict["per_label"]["coccus"] == [pytest.approx(2 / 3)]
    assert recs["2:rod"].verdict["per_label"] == {"rod": [1.0, 0.0]}
    assert recs["2:rod"].verdict["unmatched_predictions"] == 1
    assert [recs[k].correct for k in ("1:rod", "1:coccus", "2:rod")] == [True, True, False]

    metrics = json.loads((out / "bacteria/direct/metrics.json").read_text())
    total = metrics["total metrics"]
    assert (total["total"], total["right"], total["true_boxes"]) == (3, 2, 4)
    assert total["mean_iou"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    assert total["acc@0.5"] == 0.75 and total["unmatched_predictions"] == 1
    rod, coccus = metrics["per label"]["rod"], metrics["per label"]["coccus"]
    assert rod["mean_iou"] == pytest.approx(2 / 3) and rod["acc@0.5"] == pytest.approx(2 / 3)
    assert (coccus["mean_iou"], coccus["acc@0.5"]) == (pytest.approx(2 / 3), 1.0)
    assert result.metrics["bacteria"]["direct"] == metrics

    html = (out / "report.html").read_text()
    assert "Bacteria grounding (IoU)" in html
    row = html.split("Bacteria grounding (IoU)")[1].split("</tr>")[0]
    assert "66.7" in row and "56.1" in row  # measured and the card's figure

    # resumed: nothing asked again; re-scored from the kept replies and sizes
    again = run_eval("bacteria", out, backend=ScriptedBackend(["nothing"]), **kw)
    assert (again.ran, again.skipped) == (0, 3)
    assert again.metrics["bacteria"]["direct"] == metrics


def test_a_coco_file_given_as_a_path_is_a_grounding_benchmark(tmp_path, bench_data):
    path = bench_data / "bacteria" / "annotations.json"
    result = run_eval(
        str(path), tmp_path / "run", backend=ScriptedBackend(responder=_reply), settings=Settings()
    )
    total = result.metrics["annotations"]["direct"]["total metrics"]
    assert total["mean_iou"] == pytest.approx(2 / 3)
    records = EvalStore(tmp_path / "run").read_items("annotations", "direct")
    assert len(records) == 3


def test_without_a_local_copy_the_grounding_benchmark_says_how_to_give_one(tmp_path, capsys):
    from medmo_agent.evaluation.benchmarks import find_benchmark

    with pytest.raises(InputError, match="no public copy") as err:
        load_items(find_benchmark("bacteria"), None)
    assert "annotations.json" in str(err.value.fix)
    assert main(["eval", "bacteria", "--out", str(tmp_path / "x"), "--backend", "scripted"]) == 1
    assert "--data-dir" in capsys.readouterr().err


def test_grounding_on_the_tiny_checkpoint(tmp_path, bench_data, tiny_backend, tiny_settings):
    result = run_eval(
        "bacteria",
        tmp_path / "run",
        data_dir=bench_data,
        backend=tiny_backend,
        settings=tiny_settings,
        limit=1,
        max_new_tokens=8,
    )
    (rec,) = result.records["bacteria"]["direct"]
    assert rec.error is None and isinstance(rec.raw_answer, str)
    assert rec.input_size is not None and rec.correct is not None
    total = result.metrics["bacteria"]["direct"]["total metrics"]
    assert total["total"] == 1 and total["true_boxes"] >= 1
    assert 0.0 <= total["mean_iou"] <= 1.0


def test_list_with_a_data_dir_missing_a_benchmark_says_so(tmp_path, bench_data, capsys):
    partial = tmp_path / "data"
    partial.mkdir()
    (partial / "bacteria").symlink_to(bench_data / "bacteria")
    assert main(["eval", "--list", "--data-dir", str(partial)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["bacteria"].split()[1] == "3"
    assert rows["vqa_rad"].split()[1] == "?" and "no local copy" in rows["vqa_rad"]
