"""Reading cases: YAML, JSON, CSV and folders, shorthands, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.errors import InputError
from medmo_agent.review import Case, load_case_file, load_cases

from .conftest import write_cases, write_png


def test_yaml_shorthands_expand_and_image_paths_resolve_against_the_cases_file(tmp_path):
    write_png(tmp_path / "cases" / "img" / "a.png")
    path = write_cases(
        tmp_path / "cases" / "cases.yaml",
        [
            {
                "id": 7,
                "image": "img/a.png",
                "question": "Is there a nodule?",
                "expected": {"answers": ["yes"], "labels": "Nodule"},
                "targets": "nodule",
            }
        ],
        steps=["ground", "report"],
    )
    loaded = load_case_file(path)
    (case,) = loaded.cases
    assert case.id == "7"
    assert case.images[0].path == "img/a.png"
    assert Path(case.image_path(0)) == tmp_path / "cases" / "img" / "a.png"
    assert case.questions[0].question == "Is there a nodule?"
    assert case.questions[0].expected == "yes"
    assert case.expected_labels == ["Nodule"]
    assert case.targets == ["nodule"]
    assert loaded.steps == ["ground", "report"]


def test_json_list_of_cases_keeps_window_slice_and_plane_options(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "ct",
                    "images": [{"path": "/data/ct", "window": "lung", "slice": 3}],
                    "expected_boxes": [{"label": "nodule", "x1": 1, "y1": 2, "x2": 3, "y2": 4}],
                },
                {"id": "mr", "images": [{"path": "mr.nii.gz", "plane": "coronal"}]},
            ]
        )
    )
    ct, mr = load_cases(path)
    assert ct.images[0].options() == {"window": "lung", "slice": 3}
    assert ct.image_path(0) == "/data/ct"
    assert ct.expected_boxes[0].x2 == 3
    assert mr.images[0].options() == {"plane": "coronal"}


def test_csv_rows_sharing_an_id_add_questions_and_columns_split_on_separators(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text(
        "id,image,window,context,question,options,expected_answer,expected_labels,expected_boxes\n"
        "c1,a.png;b.png,lung,67M,Is there a nodule?,,yes,Nodule|Mass,"
        '"nodule:1,2,30,40; mass:5,6,7,8"\n'
        "c1,,,,Which view?,PA|AP|Lateral,PA,,\n"
        'c2,c.png,,,,,,,"[[0, 0, 10, 10]]"\n',
        encoding="utf-8",
    )
    c1, c2 = load_cases(path)
    assert [i.path for i in c1.images] == ["a.png", "b.png"]
    assert all(i.window == "lung" for i in c1.images)
    assert c1.context == "67M"
    assert [(q.question, q.expected) for q in c1.questions] == [
        ("Is there a nodule?", "yes"),
        ("Which view?", "PA"),
    ]
    assert c1.questions[1].options == ["PA", "AP", "Lateral"]
    assert c1.expected_labels == ["Nodule", "Mass"]
    assert [(b.label, b.x1, b.y2) for b in c1.expected_boxes] == [
        ("nodule", 1.0, 40.0),
        ("mass", 5.0, 8.0),
    ]
    assert c2.expected_boxes[0].x2 == 10


def test_a_folder_holds_one_case_per_sub_folder(tmp_path):
    from pydicom.data import get_testdata_file

    root = tmp_path / "cases"
    write_png(root / "chest" / "pa.png")
    write_png(root / "chest" / "lateral.png", seed=1)
    (root / "chest" / "context.txt").write_text("67M, cough\n")
    (root / "chest" / "questions.txt").write_text("Is there a nodule?\n\nWhich side?\n")
    series = root / "ct" / "series"
    series.mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), series / "1.dcm")
    (root / "described").mkdir()
    (root / "described" / "case.yaml").write_text("image: x.png\nquestion: Why?\n")
    chest, ct, described = load_cases(root)
    assert chest.id == "chest"
    assert [i.path for i in chest.images] == ["lateral.png", "pa.png"]
    assert chest.context == "67M, cough"
    assert [q.question for q in chest.questions] == ["Is there a nodule?", "Which side?"]
    assert [i.path for i in ct.images] == ["series"]  # a series folder is one image
    assert Path(ct.image_path(0)) == series
    assert described.id == "described"
    assert Path(described.image_path(0)) == root / "described" / "x.png"


def test_duplicate_case_ids_are_refused_with_the_id_named(tmp_path):
    path = write_cases(tmp_path / "c.yaml", [{"id": "a", "image": "x.png"}] * 2)
    with pytest.raises(InputError, match="'a' appears twice"):
        load_cases(path)


def test_an_invalid_case_is_named_with_the_field_that_is_wrong(tmp_path):
    path = write_cases(tmp_path / "c.yaml", [{"id": "ok", "image": "x.png"}, {"id": "bad"}])
    with pytest.raises(InputError, match=r"Case bad in .*images"):
        load_cases(path)


def test_a_question_about_an_image_the_case_lacks_is_refused(tmp_path):
    path = write_cases(
        tmp_path / "c.yaml",
        [{"id": "a", "image": "x.png", "questions": [{"question": "Q?", "image": 1}]}],
    )
    with pytest.raises(InputError, match="image 1, of 1"):
        load_cases(path)


def test_missing_or_unknown_cases_sources_say_what_to_pass(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_cases(tmp_path / "nope.yaml")
    (tmp_path / "cases.txt").write_text("hello")
    with pytest.raises(InputError, match=r"\.yaml, \.yml, \.json or \.csv"):
        load_cases(tmp_path / "cases.txt")
    (tmp_path / "bad.yaml").write_text("cases: [ {id: a")
    with pytest.raises(InputError, match="not valid YAML"):
        load_cases(tmp_path / "bad.yaml")


def test_a_case_digest_changes_when_the_case_changes():
    a = Case.model_validate({"id": "a", "image": "x.png"})
    b = Case.model_validate({"id": "a", "image": "x.png", "context": "new"})
    assert a.digest() == Case.model_validate({"id": "a", "images": ["x.png"]}).digest()
    assert a.digest() != b.digest()


_label = (
    st.text(
        alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" _-"),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool)
)


@given(labels=st.lists(_label, min_size=1, max_size=5))
def test_csv_label_lists_read_back_as_written(tmp_path_factory, labels):
    path = tmp_path_factory.mktemp("csv") / "cases.csv"
    path.write_text("id,image,expected_labels\nc,a.png," + "|".join(labels) + "\n")
    (case,) = load_cases(path)
    assert case.expected_labels == labels
