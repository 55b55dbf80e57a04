"""Report summaries: prompt and bullets/summary parsing."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.tasks import summarize


def test_prompt_embeds_the_report_and_asks_for_bullets_and_a_summary_line():
    messages = summarize.build_messages("  Findings: Clear.  ")
    assert messages[-1].images == []
    assert "Report:\nFindings: Clear.\n" in messages[-1].text
    assert "'Summary:'" in messages[-1].text


def test_empty_report_is_an_input_error():
    with pytest.raises(InputError) as info:
        summarize.build_messages("")
    assert info.value.input == "report_text"


@pytest.mark.parametrize(
    "text",
    [
        "- Right effusion\n- Cardiomegaly\nSummary: Effusion with a big heart.",
        "Key findings:\n* Right effusion\n* Cardiomegaly\n\n"
        "**Summary:** Effusion with a big heart.",
        "1. Right effusion\n2. Cardiomegaly\n\nSummary:\nEffusion with a big heart.",
        "• **Right effusion**\n• Cardiomegaly\nOne-sentence summary - Effusion with a big heart.",
    ],
)
def test_bullets_and_summary_line_are_read(text):
    result = summarize.parse(text)
    assert result.key_findings == ["Right effusion", "Cardiomegaly"]
    assert result.summary_text == "Effusion with a big heart."


def test_prose_becomes_sentences_when_there_are_no_bullets():
    result = summarize.parse("Right effusion. Cardiomegaly.")
    assert result.key_findings == ["Right effusion.", "Cardiomegaly."]
    assert result.summary_text == "Right effusion."


def test_prose_beside_bullets_is_the_summary():
    result = summarize.parse("Effusion with a big heart.\n- Right effusion\n- Cardiomegaly")
    assert result.summary_text == "Effusion with a big heart."
    assert result.key_findings == ["Right effusion", "Cardiomegaly"]
