"""Classification: prompts per mode and label matching."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.tasks import classify


def test_default_mode_uses_medmos_chest_xray_prompt(image):
    text = classify.build_messages(image)[-1].text
    assert text == (
        "Examine this chest X-ray and list all thoracic diseases or abnormalities present. "
        "If there are no findings, state 'No Finding'."
    )


def test_own_labels_are_listed_in_the_prompt(image):
    text = classify.build_messages(image, ["Melanoma", "Basal_cell carcinoma"])[-1].text
    assert "Melanoma, Basal cell carcinoma" in text and "' | '" in text


def test_free_mode_lists_no_labels(image):
    assert (
        classify.build_messages(image, [])[-1].text
        == classify.build_messages(image, free=True)[-1].text
    )
    assert "among these labels" not in classify.build_messages(image, [])[-1].text


@pytest.mark.parametrize("labels", ["Effusion", [" ", ""]])
def test_unusable_labels_are_input_errors(image, labels):
    with pytest.raises(InputError):
        classify.build_messages(image, labels)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("Effusion | Pleural_Thickening", ["Effusion", "Pleural_Thickening"]),
        ("effusion, pleural thickening", ["Effusion", "Pleural_Thickening"]),
        ("Cardiomegaly\nEdema", ["Cardiomegaly", "Edema"]),
        ("Mass and Nodule", ["Mass", "Nodule"]),
        ("- Nodules\n- Masses", ["Nodule", "Mass"]),
        ("Small left pleural effusion", ["Effusion"]),
        ("Findings: Atelectasis; Infiltration.", ["Atelectasis", "Infiltration"]),
        ("<think>Heart is big.</think><answer>CARDIOMEGALY</answer>", ["Cardiomegaly"]),
        ("pleural-thickening | Effusion | effusion", ["Pleural_Thickening", "Effusion"]),
    ],
)
def test_answers_map_to_canonical_chest_xray14_names(text, labels):
    result = classify.parse(text)
    assert result.labels == labels
    assert result.no_finding is False and result.unmatched == []


@pytest.mark.parametrize("text", ["No Finding", "no findings.", "Normal", "None"])
def test_no_finding_is_detected(text):
    result = classify.parse(text)
    assert result.no_finding is True
    assert result.labels == ["No Finding"]
    assert result.summary() == "No Finding"


def test_unmatched_terms_are_kept():
    result = classify.parse("Effusion | Sarcoidosis")
    assert result.labels == ["Effusion"] and result.unmatched == ["Sarcoidosis"]


def test_negated_terms_do_not_count():
    result = classify.parse("Effusion, no pneumothorax")
    assert result.labels == ["Effusion"]
    assert any("no pneumothorax" in n for n in result.notes)


def test_findings_win_over_a_contradictory_no_finding():
    result = classify.parse("No Finding | Mass")
    assert result.labels == ["Mass"] and result.no_finding is False
    assert any("also 'No Finding'" in n for n in result.notes)


def test_free_mode_keeps_the_models_terms():
    result = classify.parse("Granuloma | calcified nodule | granuloma", labels=[])
    assert result.labels == ["Granuloma", "calcified nodule"] and result.candidate_labels == []
    assert classify.parse("No Finding", free=True).no_finding is True


def test_custom_labels_match_case_and_space_insensitively():
    result = classify.parse("basal cell carcinoma", labels=["Melanoma", "Basal_Cell_Carcinoma"])
    assert result.labels == ["Basal_Cell_Carcinoma"]


def test_match_label_prefers_the_longest_contained_candidate():
    cands = ["Effusion", "Pleural effusion"]
    assert classify.match_label("large pleural effusion", cands) == "Pleural effusion"
    assert classify.match_label("xyz", cands) is None
