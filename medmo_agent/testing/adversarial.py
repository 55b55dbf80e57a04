"""Worst-case model answers for the task parsers: families of texts that grow with ``n``.

Each family repeats a unit that once made a parser's regular expressions rescan the rest of
the text from every position (quadratic or worse time). The parsers must now take time
linear in the text; ``benchmarks/parser_worst_case.py`` times every family at growing
sizes, and ``tests/tasks/test_parser_worst_cases.py`` checks what each parser reads from
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "Family", "parsers"]


@dataclass(frozen=True)
class Family:
    """A family of adversarial answers.

    Attributes:
        name: Short name (used in benchmark output).
        parser: Key of :func:`parsers` that reads these texts.
        build: ``n`` -> the text with the unit repeated ``n`` times.
        unit: Characters added per step of ``n`` (to size texts in bytes).
        why: What made this family slow before.
    """

    name: str
    parser: str
    build: Callable[[int], str]
    unit: int
    why: str

    def sized(self, chars: int) -> str:
        """A text of about ``chars`` characters."""
        return self.build(max(1, chars // self.unit))


FAMILIES: tuple[Family, ...] = (
    Family(
        "unclosed_think",
        "ground",
        lambda n: "<think>" * n,
        7,
        "an unclosed <think> was searched for its end from every <think>",
    ),
    Family(
        "label_separators",
        "ground",
        lambda n: "a" + " ," * n + "b [1,2,3,4]",
        2,
        "the label's trailing separators were trimmed by a regex anchored at the end",
    ),
    Family(
        "label_spaces",
        "ground",
        lambda n: "a" + " " * n + "b [1,2,3,4]",
        1,
        "the same end-trim, on spaces",
    ),
    Family(
        "blank_lines",
        "ground",
        lambda n: "x\n" + "\t \n" * n + "y",
        3,
        "'^\\W*none' crossed newlines, rescanning every later line from each line",
    ),
    Family(
        "yes_no_spaces",
        "vqa_closed",
        lambda n: "answer" + " " * n + "x",
        1,
        "'answer\\s*(is|:)?\\s*\\W*' tried every split of the spaces (cubic)",
    ),
    Family(
        "choice_spaces",
        "vqa_choice",
        lambda n: "the answer" + " " * n + "x",
        1,
        "'answer ... \\s*[:=]?\\s*\\(?\\s*' tried every split of the spaces",
    ),
    Family(
        "lone_letters",
        "vqa_choice",
        lambda n: "A " * n,
        2,
        "the text after each lone letter was copied to look at the next word",
    ),
    Family(
        "classify_spaces",
        "classify",
        lambda n: "effusion" + " " * n + "x",
        1,
        "the separator's leading \\s* rescanned a run of spaces from each space",
    ),
    Family(
        "classify_terms",
        "classify_free",
        lambda n: "".join(f"t{i}, " for i in range(n)),
        7,
        "every new term was looked up in a list of the earlier ones",
    ),
    Family(
        "report_heading_spaces",
        "report",
        lambda n: "findings" + " " * n + "x",
        1,
        "two [ \\t]* runs around an optional '**' after a heading word",
    ),
    Family(
        "report_line_spaces",
        "report",
        lambda n: "x\n" + " " * n + "x",
        1,
        "the same, before a heading word at a line start",
    ),
    Family(
        "summary_spaces",
        "summarize",
        lambda n: "a:" + " " * n + "x",
        1,
        "two [ \\t]* runs around an optional '**' after a heading's colon",
    ),
    Family(
        "step_spaces",
        "reason",
        lambda n: "<think>a" + " " * n + "b</think><answer>c</answer>",
        1,
        "'(?<=\\s)[ \\t]*step' rescanned a run of spaces from each space",
    ),
    Family(
        "many_boxes",
        "ground",
        lambda n: "nodule: [1, 2, 3, 4] " * n,
        21,
        "(control) many well-formed boxes",
    ),
    Family(
        "unclosed_objects",
        "ground",
        lambda n: '{"bbox": [1, 2, 3, 4' * n,
        20,
        "(control) JSON objects that never close",
    ),
)


def parsers() -> dict[str, Callable[[str], Any]]:
    """The parsers the families are read by, each taking only the text."""
    from ..tasks import classify, ground, reason, report, summarize, vqa

    options = ["Pneumonia", "Effusion", "Normal"]
    return {
        "ground": lambda t: ground.parse(t, input_size=(640, 480), original_size=(1000, 750)),
        "vqa_closed": lambda t: vqa.parse(t, question="Is it?", question_type="closed"),
        "vqa_choice": lambda t: vqa.parse(t, question="Which?", options=options),
        "classify": classify.parse,
        "classify_free": lambda t: classify.parse(t, labels=[]),
        "report": report.parse,
        "summarize": summarize.parse,
        "reason": lambda t: reason.parse(t, question="Why?"),
    }
