"""Every benchmark loads from a copy in its published layout, through ``datasets``."""

from __future__ import annotations

import json
import shutil

import pytest

from medmo_agent.errors import InputError
from medmo_agent.evaluation.benchmarks import BENCHMARKS, find_benchmark
from medmo_agent.evaluation.sources import count_items, load_items

from .fixtures import SIZES


def test_every_benchmark_of_the_card_is_declared_with_its_hub_source():
    assert set(BENCHMARKS) == set(SIZES)
    hub = {b: s.hub_id for b, s in BENCHMARKS.items()}
    assert hub["vqa_rad"] == "flaviagiammarino/vqa-rad"
    assert hub["slake"] == "BoKelvin/SLAKE"
    assert hub["pmc_vqa"] == "RadGenome/PMC-VQA"
    assert hub["medxpertqa_mm"] == hub["medxpertqa_text"] == "TsinghuaC3I/MedXpertQA"
    assert BENCHMARKS["medmcqa"].split == "validation"
    assert BENCHMARKS["medbullets_op5"].split == "train"
    assert len(BENCHMARKS["mmlu_med"].configs) == 9
    assert len(BENCHMARKS["mmmu_med"].configs) == 5
    assert BENCHMARKS["vqa_rad"].size == 451


@pytest.mark.parametrize("bench", sorted(SIZES))
def test_each_fixture_loads_through_the_hub_loader_with_every_item_readable(bench, bench_data):
    spec = find_benchmark(bench)
    items = load_items(spec, bench_data)
    assert len(items) == SIZES[bench] == count_items(spec, bench_data)
    assert len({i.item_id for i in items}) == len(items)
    for item in items:
        assert item.load_error is None
        assert item.question_type in spec.question_types
        if spec.scorer == "grounding":  # the ground task's prompt, direct mode only
            assert item.grounding is not None and "bounding box" in item.prompt
            continue
        assert item.prompt and item.reason_prompt != item.prompt
        assert "boxed" in item.reason_prompt
        assert bool(item.images) != spec.text_only
        if item.question_type == "multiple_choice":
            letters = [o.lstrip("(")[0] for o in item.options]
            assert item.answer in letters


def test_prompts_use_each_benchmarks_option_format(bench_data):
    medqa = load_items(find_benchmark("medqa"), bench_data)[0]
    assert medqa.prompt == (
        "\nQuestion: A 60-year-old man has chest pain. First drug?\nOptions: \n"
        "A. Aspirin\nB. Heparin\nC. Warfarin\nD. Alteplase\n"
        "Answer with the option's letter from the given choices directly."
    )
    pubmed = load_items(find_benchmark("pubmedqa"), bench_data)[0]
    assert pubmed.prompt.startswith("Context: Background paragraph.\nResults paragraph.\n\n")
    assert "A.yes\nB.no\nC.maybe" in pubmed.prompt
    assert load_items(find_benchmark("medbullets_op5"), bench_data)[0].options[-1] == (
        "E.Sarcoidosis"
    )
    mmmu = load_items(find_benchmark("mmmu_med"), bench_data)
    assert "(A) Aorta\n(B) Trachea" in mmmu[0].prompt
    assert [i.question_type for i in mmmu[:2]] == ["multiple_choice", "open"]
    assert mmmu[1].gold == ("2",)
    xpert = load_items(find_benchmark("medxpertqa_mm"), bench_data)[0]
    assert "Answer Choices" not in xpert.prompt and "E. Mass" in xpert.prompt
    pmc = load_items(find_benchmark("pmc_vqa"), bench_data)[0]
    assert pmc.options == ("A:CT", "B:MRI", "C:Ultrasound", "D:PET") and pmc.answer == "B"
    assert "Options: \nA:CT\nB:MRI\nC:Ultrasound\nD:PET\nAnswer with" in pmc.prompt
    op4 = load_items(find_benchmark("medbullets_op4"), bench_data)[0]
    assert op4.options == ("A.Asthma", "B.COPD", "C.Pneumonia", "D.Embolism") and op4.answer == "B"
    mmlu = load_items(find_benchmark("mmlu_med"), bench_data)[0]
    assert "A.Vagus\nB.Phrenic\nC.Hypoglossal\nD.Radial" in mmlu.prompt


def test_vqa_items_split_yes_no_and_open_and_slake_keeps_its_language(bench_data):
    rad = load_items(find_benchmark("vqa_rad"), bench_data)
    assert [i.question_type for i in rad] == ["yes_no", "yes_no", "open", "open"]
    assert rad[0].prompt.endswith("\nPlease output 'yes' or 'no'(no extra output).")
    assert rad[2].prompt.endswith("\nPlease answer the question concisely.")
    slake = load_items(find_benchmark("slake"), bench_data)
    assert [i.question_type for i in slake] == ["yes_no", "closed", "open", "closed"]
    closed_suffix = "\nAnswer the question using a single word or phrase."
    assert slake[0].prompt == "Is the lung healthy?" + closed_suffix  # yes/no answer, closed
    assert slake[1].prompt.endswith(closed_suffix)
    assert slake[3].lang == "zh" and slake[3].prompt.endswith("请用一个单词或者短语回答该问题。")
    assert [i.item_id for i in slake] == ["1", "2", "3", "4"]


def test_omnimedvqa_maps_the_answer_text_to_its_letter(bench_data):
    items = load_items(find_benchmark("omnimedvqa"), bench_data)
    assert [(i.answer, len(i.options), i.modality) for i in items] == [
        ("B", 3, "MR"),
        ("B", 2, "CT"),
    ]
    assert {i.category for i in items} == {"Modality Recognition"}


def test_supergpqa_keeps_medicine_only(bench_data):
    items = load_items(find_benchmark("supergpqa"), bench_data)
    assert [i.item_id for i in items] == ["sg0"]


def test_limit_takes_the_first_items_and_a_seed_draws_the_same_ones_again(bench_data):
    spec = find_benchmark("mmlu_med")
    first = [i.item_id for i in load_items(spec, bench_data, limit=3)]
    assert first == ["anatomy-000000", "clinical_knowledge-000000", "college_biology-000000"]
    assert load_items(spec, bench_data, limit=1)[0].category == "anatomy"
    drawn = [i.item_id for i in load_items(spec, bench_data, limit=3, seed=7)]
    assert drawn == [i.item_id for i in load_items(spec, bench_data, limit=3, seed=7)]
    assert drawn != [i.item_id for i in load_items(spec, bench_data, limit=3, seed=8)]
    assert len(set(drawn)) == 3


def test_a_missing_folder_names_the_path_and_the_layout(tmp_path):
    with pytest.raises(InputError) as info:
        load_items(find_benchmark("vqa_rad"), tmp_path)
    text = str(info.value)
    assert str(tmp_path / "vqa_rad") in text
    assert "data/test-00000-of-00001.parquet" in text and "--data-dir" in text


def test_a_missing_image_fails_that_item_only(bench_data, tmp_path):
    shutil.copytree(bench_data / "slake", tmp_path / "slake")
    (tmp_path / "slake/imgs/xmlab1/source.jpg").unlink()
    items = load_items(find_benchmark("slake"), tmp_path)
    assert [i.load_error is None for i in items] == [True, False, True, True]
    assert "not found" in (items[1].load_error or "")


def test_a_row_without_the_benchmarks_fields_is_refused_with_them_named(bench_data, tmp_path):
    shutil.copytree(bench_data / "slake", tmp_path / "slake")
    path = tmp_path / "slake/test.json"
    rows = json.loads(path.read_text())
    for r in rows:
        del r["answer_type"]
    path.write_text(json.dumps(rows))
    with pytest.raises(InputError) as info:
        load_items(find_benchmark("slake"), tmp_path)
    assert "answer_type" in str(info.value) and "BoKelvin/SLAKE" in str(info.value)


def test_an_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(InputError) as info:
        find_benchmark("vqa-radd")
    assert "vqa_rad" in str(info.value) and "--list" in str(info.value)
    assert find_benchmark("VQA-RAD").id == "vqa_rad"


def _size(image) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image.read_bytes())).size


def test_items_keep_images_encoded_until_asked(bench_data):
    rad = load_items(find_benchmark("vqa_rad"), bench_data)[0]
    (image,) = rad.images
    assert image.path is None and image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _size(image) == (64, 64)
    slake = load_items(find_benchmark("slake"), bench_data)[0]
    assert slake.images[0].data is None
    assert slake.images[0].path == bench_data / "slake/imgs/xmlab0/source.jpg"


def test_the_hub_path_asks_for_the_published_files_and_reads_what_comes_back(
    bench_data, tmp_path, monkeypatch
):
    """Offline, the Hub's answers are the fixture files; what is asked for is recorded."""
    import zipfile

    import datasets
    import huggingface_hub

    local = {"flaviagiammarino/vqa-rad": "vqa_rad", "cais/mmlu": "mmlu_med"}
    real_load = datasets.load_dataset
    asked: list[tuple] = []

    def load_dataset(path, name=None, **kw):
        asked.append((path, name, kw.get("split")))
        if path in local:  # the hub's repository: its files, as the fixture holds them
            return real_load(str(bench_data / local[path]), data_dir=name, split=kw["split"])
        return real_load(path, name, **kw)  # the json/csv builders read local files

    def hf_hub_download(repo_id, filename, repo_type=None):
        asked.append((repo_id, filename, repo_type))
        if filename == "imgs.zip":
            archive = tmp_path / "imgs.zip"
            with zipfile.ZipFile(archive, "w") as zf:
                for f in (bench_data / "slake/imgs").rglob("*.jpg"):
                    zf.write(f, f.relative_to(bench_data / "slake"))
            return str(archive)
        return str(bench_data / "slake" / filename)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))

    assert len(load_items(find_benchmark("vqa_rad"))) == 4
    assert ("flaviagiammarino/vqa-rad", None, "test") in asked
    assert len(load_items(find_benchmark("mmlu_med"), limit=2)) == 2
    assert [a[1] for a in asked if a[0] == "cais/mmlu"] == list(BENCHMARKS["mmlu_med"].configs)
    slake = load_items(find_benchmark("slake"))
    assert [i.load_error for i in slake] == [None] * 4
    assert _size(slake[0].images[0]) == (64, 64)
    assert ("BoKelvin/SLAKE", "test.json", "dataset") in asked
    assert ("BoKelvin/SLAKE", "imgs.zip", "dataset") in asked
    unpacked = tmp_path / "cache/medmo-eval/slake/imgs"
    assert (unpacked / ".complete").is_file() and slake[0].images[0].path is not None
    assert unpacked in slake[0].images[0].path.parents


def test_an_answer_matching_no_option_fails_that_item_only_and_the_run_goes_on(
    bench_data, tmp_path
):
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.config import Settings
    from medmo_agent.evaluation.runner import run_eval

    shutil.copytree(bench_data / "omnimedvqa", tmp_path / "omnimedvqa")
    path = tmp_path / "omnimedvqa/QA_information/Open-access/Demo.json"
    rows = json.loads(path.read_text())
    rows[0]["gt_answer"] = "Ultrasound"
    path.write_text(json.dumps(rows))
    items = load_items(find_benchmark("omnimedvqa"), tmp_path)
    assert [i.item_id for i in items] == ["Demo_0", "Demo_1"]
    assert "'Ultrasound' is none of its options" in (items[0].load_error or "")
    assert items[1].load_error is None and items[1].answer == "B"

    result = run_eval(
        "omnimedvqa",
        tmp_path / "run",
        data_dir=tmp_path,
        backend=ScriptedBackend(responder=lambda request: "B"),
        settings=Settings(),
    )
    (failed,) = result.failed
    assert failed.item_id == "Demo_0" and "'Ultrasound' is none of its options" in (
        failed.error or ""
    )
    totals = result.metrics["omnimedvqa"]["direct"]["total metrics"]
    assert (totals["total"], totals["right"], totals["failed"]) == (1, 1, 1)


def test_an_image_file_over_the_byte_cap_fails_its_item_by_name_and_the_run_goes_on(
    bench_data, tmp_path
):
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.config import Settings
    from medmo_agent.evaluation.runner import run_eval

    shutil.copytree(bench_data / "slake", tmp_path / "slake")
    items = load_items(find_benchmark("slake"), tmp_path)
    big = items[0].images[0].path
    small = max(p.stat().st_size for i in items[1:] for p in [i.images[0].path])
    big.write_bytes(big.read_bytes() + b"\0" * (small + 1))  # still a JPEG, just longer
    cap = small + 1  # every other image fits
    result = run_eval(
        "slake",
        tmp_path / "run",
        data_dir=tmp_path,
        backend=ScriptedBackend(responder=lambda request: "yes"),
        settings=Settings(max_image_bytes=cap),
    )
    failed = {r.item_id: r.error for r in result.failed}
    assert list(failed) == [items[0].item_id]
    error = failed[items[0].item_id]
    # refused when opened, before it is read, naming the file (by its label: the records
    # are shared, so no path) rather than an anonymous upload
    assert f"over the {cap:,}-byte cap" in error and "path#" in error, error
    assert "inline" not in error and "slake/imgs" not in error
    totals = result.metrics["slake"]["direct"]["total metrics"]
    assert (totals["total"], totals["failed"]) == (len(items) - 1, 1)


def test_an_image_archive_over_the_unpack_cap_is_refused_before_anything_is_written(
    bench_data, tmp_path, monkeypatch
):
    import zipfile

    import datasets
    import huggingface_hub

    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (bench_data / "slake/imgs").rglob("*.jpg"):
            zf.write(f, f.relative_to(bench_data / "slake"))
        unpacked = sum(i.file_size for i in zf.infolist())

    def hf_hub_download(repo_id, filename, repo_type=None):
        return str(archive if filename == "imgs.zip" else bench_data / "slake" / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDMO_EVAL_MAX_ARCHIVE_BYTES", str(unpacked - 1))
    with pytest.raises(InputError) as info:
        load_items(find_benchmark("slake"))
    assert f"unpacks to {unpacked:,} bytes" in str(info.value)
    assert "MEDMO_EVAL_MAX_ARCHIVE_BYTES" in str(info.value)
    assert not (tmp_path / "cache/medmo-eval/slake").exists()
    # at the cap it unpacks
    monkeypatch.setenv("MEDMO_EVAL_MAX_ARCHIVE_BYTES", str(unpacked))
    assert [i.load_error for i in load_items(find_benchmark("slake"))] == [None] * 4
