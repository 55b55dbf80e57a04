"""Report generation: prompt and section parsing."""

from __future__ import annotations

import pytest

from medmo_agent.tasks import report


def test_prompt_is_medmos_report_instruction_with_optional_context(image):
    plain = report.build_messages(image)[-1].text
    assert plain == "Generate a detailed radiology report based on the given medical image."
    with_context = report.build_messages(image, context=" 60M, chest pain. ")[-1].text
    assert with_context == plain + "\nClinical context: 60M, chest pain."


@pytest.mark.parametrize(
    "text",
    [
        "Findings: Clear lungs. Normal heart size.\nImpression: No acute disease.",
        "FINDINGS: Clear lungs. Normal heart size. IMPRESSION: No acute disease.",
        "Findings - Clear lungs. Normal heart size.\nImpression - No acute disease.",
        "**Findings:** Clear lungs. Normal heart size.\n\n**Impression:** No acute disease.",
        "**Findings**: Clear lungs. Normal heart size.\n**Impression**: No acute disease.",
        "## Findings\nClear lungs. Normal heart size.\n\n## Impression\nNo acute disease.",
        "<think>Look at it.</think><answer>findings: Clear lungs. Normal heart size.\n"
        "impression: No acute disease.</answer>",
        "Findings: Clear lungs. Normal heart size.\nConclusion: No acute disease.",
    ],
)
def test_findings_and_impression_are_split_from_any_heading_style(text):
    result = report.parse(text)
    assert result.findings == "Clear lungs. Normal heart size."
    assert result.impression == "No acute disease."
    assert result.raw_text == text
    assert result.notes == []


def test_other_sections_end_the_findings():
    text = "Technique: PA view.\nFindings: Clear lungs.\nRecommendation: None.\nImpression: Normal."
    result = report.parse(text)
    assert (result.findings, result.impression) == ("Clear lungs.", "Normal.")


def test_a_report_without_headings_is_all_findings():
    text = "The lungs are clear. The findings are unremarkable."
    result = report.parse(text)
    assert result.findings == text and result.impression == ""
    assert "findings holds the whole report" in result.notes[0]


def test_text_before_an_impression_heading_is_the_findings():
    result = report.parse("Clear lungs.\nImpression: Normal.")
    assert (result.findings, result.impression) == ("Clear lungs.", "Normal.")


def test_an_empty_report_says_so():
    result = report.parse("")
    assert result.findings == "" and result.notes == ["The model gave an empty report."]
