"""Grounding and detection prompts, worded as MedMO was trained (pixel values)."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.tasks import detect, ground

from .conftest import make_image


def test_all_abnormalities_prompt_asks_for_pixel_boxes_and_names_the_modality():
    text = ground.build_messages(make_image("DX"))[-1].text
    assert "Detect any visible diseases or abnormalities in this X-ray image." in text
    assert "<box> [x_min, y_min, x_max, y_max] </box> in pixel values" in text
    assert "in this CT image" in ground.build_messages(make_image("CT"))[-1].text


def test_targets_prompt_lists_the_targets():
    text = ground.build_messages(make_image(), "left lung, heart\nheart")[-1].text
    assert text.startswith(
        "Detect the following anatomical regions or findings in this image: left lung, heart."
    )
    assert "[[x_min, y_min, x_max, y_max]] in pixel values" in text


def test_targets_of_the_wrong_type_are_an_input_error():
    with pytest.raises(InputError):
        ground.normalize_targets(3)


def test_a_single_target_labels_unlabelled_boxes():
    result = ground.parse(
        "<box>[10, 10, 20, 20]</box>",
        input_size=(64, 48),
        original_size=(64, 48),
        targets=["heart"],
    )
    assert result.boxes[0].label == "heart" and result.targets == ["heart"]


@pytest.mark.parametrize(
    ("label", "plural"),
    [
        ("cell", "cells"),
        ("bacterium", "bacteria"),
        ("nucleus", "nuclei"),
        ("mass", "masses"),
        ("polyp", "polyps"),
        ("body", "bodies"),
    ],
)
def test_detection_prompt_uses_the_plural(label, plural):
    assert detect.plural(label) == plural
    text = detect.build_messages(make_image(), label)[-1].text
    assert text.startswith(f"Detect and localize all {plural}. For each {label}, provide: <box> [")


def test_detection_counts_per_label_and_negatives():
    result = detect.parse(
        "Cell: [ [1, 1, 5, 5], [6, 6, 9, 9] ]\nBacteria: [ [10, 10, 20, 20] ]",
        input_size=(64, 48),
        original_size=(64, 48),
    )
    assert result.counts == {"Cell": 2, "Bacteria": 1}
    empty = detect.parse(
        "No bacteria found.", input_size=(64, 48), original_size=(64, 48), label="bacterium"
    )
    assert empty.counts == {} and empty.found is False and empty.summary() == "Nothing detected."
