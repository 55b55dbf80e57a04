"""The box parser: every format MedMO writes, mapped to original-image pixels."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo_agent.tasks.boxes import detect_space, extract_raw_boxes, parse_boxes

INPUT = (1024, 1024)  # what the model saw
ORIGINAL = (2048, 1536)  # x scales by 2, y by 1.5


def boxes_of(text, input_size=INPUT, original_size=ORIGINAL, **kw):
    parsed = parse_boxes(text, input_size=input_size, original_size=original_size, **kw)
    return [(b.label, b.xyxy) for b in parsed.boxes], parsed


GOLDEN = [
    pytest.param(
        "Fractures <box>[[156, 516, 231, 607], [240, 529, 296, 581]]</box>",
        [
            ("Fractures", (312.0, 774.0, 462.0, 910.5)),
            ("Fractures", (480.0, 793.5, 592.0, 871.5)),
        ],
        id="model-card",
    ),
    pytest.param(
        "Bacteria: [ [10, 20, 30, 40], [50, 60, 70, 80] ]",
        [("Bacteria", (20.0, 30.0, 60.0, 60.0)), ("Bacteria", (100.0, 90.0, 140.0, 120.0))],
        id="label-colon-list",
    ),
    pytest.param(
        "Cell: [ [10, 20, 30, 40] ]\nBacteria: [ [50, 60, 70, 80] ]",
        [("Cell", (20.0, 30.0, 60.0, 60.0)), ("Bacteria", (100.0, 90.0, 140.0, 120.0))],
        id="two-labelled-lists",
    ),
    pytest.param(
        "fracture: [ 10, 20, 30, 40 ]\nnodule: [ 50, 60, 70, 80 ]",
        [("fracture", (20.0, 30.0, 60.0, 60.0)), ("nodule", (100.0, 90.0, 140.0, 120.0))],
        id="one-per-line",
    ),
    pytest.param(
        "<think>The box [1, 2, 3, 4] is a guess.</think>\n"
        "<answer>\nPneumothorax: <box> 10, 20, 30, 40 </box>\n</answer>",
        [("Pneumothorax", (20.0, 30.0, 60.0, 60.0))],
        id="answer-block-box-tag",
    ),
    pytest.param(
        "Cell: <box> [ 10, 20, 30, 40 ] [ 50, 60, 70, 80 ] </box>",
        [("Cell", (20.0, 30.0, 60.0, 60.0)), ("Cell", (100.0, 90.0, 140.0, 120.0))],
        id="groups-in-one-box-tag",
    ),
    pytest.param(
        json.dumps(
            {
                "box_format": "[x_min, y_min, x_max, y_max] (pixel)",
                "detections": [
                    {"label": "liver", "bbox": [10, 20, 30, 40]},
                    {"label": "spleen", "bbox": [50, 60, 70, 80]},
                ],
            }
        ),
        [("liver", (20.0, 30.0, 60.0, 60.0)), ("spleen", (100.0, 90.0, 140.0, 120.0))],
        id="json-detections",
    ),
    pytest.param(
        "Difference detected: [ [10, 20, 30, 40] ]",
        [("Difference detected", (20.0, 30.0, 60.0, 60.0))],
        id="two-image-difference",
    ),
    pytest.param(
        '```json\n[\n  {"label": "liver", "bbox": [10.5, 20.25, 30, 40],},\n]\n```',
        [("liver", (21.0, 30.4, 60.0, 60.0))],
        id="fenced-json-floats-trailing-commas",
    ),
    pytest.param(
        '[{"bbox": [10, 20, 30, 40], "label": "nodule"}, {"bbox": [50, 60, 70',
        [("nodule", (20.0, 30.0, 60.0, 60.0))],
        id="truncated-json-keeps-complete-objects",
    ),
    pytest.param(
        "1. **Nodule**: [10,20,30,40]\n2. **Mass** - [50 , 60 , 70 , 80]",
        [("Nodule", (20.0, 30.0, 60.0, 60.0)), ("Mass", (100.0, 90.0, 140.0, 120.0))],
        id="markdown-list-extra-spaces",
    ),
    pytest.param(
        "<box>[10, 20, 30, 40]</box>",
        [("finding", (20.0, 30.0, 60.0, 60.0))],
        id="unlabelled-takes-default",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_every_medmo_box_format_maps_to_original_pixels(text, expected):
    got, parsed = boxes_of(text)
    assert got == expected
    assert parsed.found is True
    assert parsed.coordinate_space == "pixel"


def test_qwen_bbox_2d_answer_is_read_on_the_0_1000_grid():
    text = '[{"bbox_2d": [100, 200, 300, 400], "label": "nodule"}]'
    got, parsed = boxes_of(text)
    assert parsed.coordinate_space == "relative_1000"
    assert got == [("nodule", (204.8, 307.2, 614.4, 614.4))]
    assert parsed.boxes[0].x1_norm == pytest.approx(0.1)
    assert parsed.boxes[0].y2_norm == pytest.approx(0.4)


def test_bbox_2d_values_over_1000_are_pixels():
    _, parsed = boxes_of('[{"bbox_2d": [100, 200, 1010, 400], "label": "lung"}]')
    assert parsed.coordinate_space == "pixel"


def test_coordinates_beyond_the_input_image_but_within_1000_are_relative():
    # a 512x384 input: y=900 cannot be a pixel of it, so the answer is on the 0-1000 grid
    got, parsed = boxes_of("nodule: [100, 500, 600, 900]", input_size=(512, 384))
    assert parsed.coordinate_space == "relative_1000"
    assert got == [("nodule", (204.8, 768.0, 1228.8, 1382.4))]


def test_coordinates_above_1000_are_pixels_of_a_large_input():
    got, parsed = boxes_of("lesion: [1100, 10, 1200, 20]", input_size=(1280, 1280))
    assert parsed.coordinate_space == "pixel"
    assert got == [("lesion", (1760.0, 12.0, 1920.0, 24.0))]


def test_pixel_answer_on_a_non_square_input_uses_both_scales():
    # original 2000x1500 seen as 1152x864 by the processor
    got, _ = boxes_of(
        "mass: [576, 432, 1152, 864]", input_size=(1152, 864), original_size=(2000, 1500)
    )
    assert got == [("mass", (1000.0, 750.0, 2000.0, 1500.0))]


def test_unknown_input_size_reads_original_pixels_and_says_so():
    got, parsed = boxes_of("mass: [10, 20, 30, 40]", input_size=None)
    assert got == [("mass", (10.0, 20.0, 30.0, 40.0))]
    assert any("unknown" in n for n in parsed.notes)


def test_boxes_are_clipped_to_the_image():
    got, parsed = boxes_of("mass: [-10, 1000, 600, 1030]", input_size=(1024, 1024))
    assert got == [("mass", (0.0, 1500.0, 1200.0, 1536.0))]
    assert any("Clipped 1" in n for n in parsed.notes)


def test_swapped_corners_are_reordered():
    got, parsed = boxes_of("mass: [30, 40, 10, 20]")
    assert got == [("mass", (20.0, 30.0, 60.0, 60.0))]
    assert any("Reordered" in n for n in parsed.notes)


def test_degenerate_boxes_are_dropped_with_a_note():
    got, parsed = boxes_of("a: [10, 10, 10, 50]\nb: [1030, 10, 1040, 50]\nc: [10, 20, 30, 40]")
    assert got == [("c", (20.0, 30.0, 60.0, 60.0))]
    dropped = [n for n in parsed.notes if n.startswith("Dropped")]
    assert len(dropped) == 2 and "'a'" in dropped[0] and "'b'" in dropped[1]


def test_pixel_spacing_gives_sizes_in_mm():
    _, parsed = boxes_of("mass: [10, 20, 30, 40]", pixel_spacing=(0.5, 0.25))
    box = parsed.boxes[0]
    assert (box.width_mm, box.height_mm) == (10.0, 15.0)  # 40 px * 0.25, 30 px * 0.5


@pytest.mark.parametrize(
    "text", ["No Finding", "No bacteria found.", "No disease found", "No abnormalities detected."]
)
def test_negative_answers_report_nothing_found(text):
    got, parsed = boxes_of(text)
    assert got == []
    assert parsed.found is False
    assert parsed.coordinate_space == "none"


def test_prose_without_boxes_is_found_but_unlocalised():
    got, parsed = boxes_of("There is a large right pleural effusion.")
    assert got == []
    assert parsed.found is True
    assert any("No bounding boxes" in n for n in parsed.notes)


def test_empty_answer_is_not_found():
    _, parsed = boxes_of("   ")
    assert parsed.found is False
    assert parsed.notes == ["The model gave an empty answer."]


def test_digits_without_separators_are_not_a_box():
    assert extract_raw_boxes("see [1234] and [12 34]") == []


def test_detect_space_prefers_pixels_when_everything_fits():
    raws = extract_raw_boxes("a: [10, 20, 500, 600]")
    assert detect_space(raws, (1024, 1024)) == "pixel"
    assert detect_space([], (1024, 1024)) == "none"


# -- properties ----------------------------------------------------------------------------

sizes = st.tuples(st.integers(32, 4096), st.integers(32, 4096))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), input_size=sizes, original_size=sizes)
def test_arbitrary_text_never_raises_and_boxes_lie_inside_the_image(
    text, input_size, original_size
):
    parsed = parse_boxes(text, input_size=input_size, original_size=original_size)
    w, h = original_size
    for b in parsed.boxes:
        assert 0 <= b.x1 < b.x2 <= w
        assert 0 <= b.y1 < b.y2 <= h
        assert b.area > 0
    assert parsed.found or not parsed.boxes


_box_alphabet = st.sampled_from(list('[]<>{}(),:;- 0123456789.\nabox/"_'))


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=_box_alphabet, max_size=300),
    input_size=sizes,
    original_size=sizes,
)
def test_box_like_junk_never_raises_and_boxes_lie_inside_the_image(text, input_size, original_size):
    parsed = parse_boxes(text, input_size=input_size, original_size=original_size)
    w, h = original_size
    for b in parsed.boxes:
        assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h


LABELS = ["nodule", "Cell", "pleural effusion", "Fracture", "left lung", "mass"]


@st.composite
def pixel_boxes(draw, input_size):
    w, h = input_size
    x1 = draw(st.integers(0, w - 2))
    y1 = draw(st.integers(0, h - 2))
    x2 = draw(st.integers(x1 + 1, w))
    y2 = draw(st.integers(y1 + 1, h))
    return (draw(st.sampled_from(LABELS)), (x1, y1, x2, y2))


def _render(fmt: str, boxes) -> str:
    if fmt == "card":
        return "\n".join(
            f"{lab} <box>[[{x1}, {y1}, {x2}, {y2}]]</box>" for lab, (x1, y1, x2, y2) in boxes
        )
    if fmt == "colon":
        return "\n".join(f"{lab}: [ [{x1}, {y1}, {x2}, {y2}] ]" for lab, (x1, y1, x2, y2) in boxes)
    if fmt == "line":
        return "\n".join(f"{lab}: [ {x1}, {y1}, {x2}, {y2} ]" for lab, (x1, y1, x2, y2) in boxes)
    if fmt == "answer":
        body = "\n".join(
            f"{lab}: <box> {x1}, {y1}, {x2}, {y2} </box>" for lab, (x1, y1, x2, y2) in boxes
        )
        return f"<think>Looking.</think>\n<answer>\n{body}\n</answer>"
    if fmt == "json":
        dets = [{"label": lab, "bbox": list(xyxy)} for lab, xyxy in boxes]
        return "```json\n" + json.dumps({"detections": dets}) + "\n```"
    raise AssertionError(fmt)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    fmt=st.sampled_from(["card", "colon", "line", "answer", "json"]),
    input_size=st.tuples(st.integers(256, 1536), st.integers(256, 1536)).map(
        lambda s: (s[0] // 32 * 32, s[1] // 32 * 32)
    ),
    original_size=sizes,
)
def test_random_pixel_boxes_round_trip_in_every_format(data, fmt, input_size, original_size):
    boxes = data.draw(st.lists(pixel_boxes(input_size), min_size=1, max_size=6))
    parsed = parse_boxes(_render(fmt, boxes), input_size=input_size, original_size=original_size)
    assert parsed.coordinate_space == "pixel"
    sx, sy = original_size[0] / input_size[0], original_size[1] / input_size[1]
    kept = []
    for label, (x1, y1, x2, y2) in boxes:
        expected = (round(x1 * sx, 1), round(y1 * sy, 1), round(x2 * sx, 1), round(y2 * sy, 1))
        if expected[2] > expected[0] and expected[3] > expected[1]:
            kept.append((label, expected))
    got = [(b.label, b.xyxy) for b in parsed.boxes]
    assert [g[0] for g in got] == [k[0] for k in kept]
    for (_, g), (_, k) in zip(got, kept, strict=True):
        assert g == pytest.approx(k, abs=0.11)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), original_size=st.tuples(st.integers(1000, 4096), st.integers(1000, 4096)))
def test_random_qwen_boxes_round_trip_on_the_0_1000_grid(data, original_size):
    boxes = data.draw(st.lists(pixel_boxes((1000, 1000)), min_size=1, max_size=5))
    text = json.dumps([{"bbox_2d": list(xyxy), "label": lab} for lab, xyxy in boxes])
    parsed = parse_boxes(text, input_size=(1024, 768), original_size=original_size)
    assert parsed.coordinate_space == "relative_1000"
    w, h = original_size
    for b, (label, (x1, _y1, _x2, y2)) in zip(parsed.boxes, boxes, strict=True):
        assert b.label == label
        assert b.x1 == pytest.approx(x1 * w / 1000, abs=0.11)
        assert b.y2 == pytest.approx(y2 * h / 1000, abs=0.11)
