"""An LLM judge for open-ended answers, over an OpenAI-compatible server, as MedEvalKit asks it.

MedEvalKit sends one user turn (:data:`JUDGE_TEMPLATE`: the question, the standard answer
and the user's answer) at temperature 0 and reads the verdict from ``<judge>...</judge>``:
``0`` means correct, anything else (``1``, no tag, an empty or failed reply) means wrong.
The question is the benchmark's raw question (not the prompt with its suffix); the answer
judged is the response after the VQA first pass (``\\boxed{}`` or ``<answer>``), lowercased
and stripped for VQA-RAD and PathVQA, as given for SLAKE.

Which items are judged (:func:`needs_judge`): the open items of VQA-RAD, SLAKE and
PathVQA (MMMU's open items keep MMMU's rule, as in MedEvalKit); SLAKE's closed items too under
``compat="medevalkit"`` (MedEvalKit judges every SLAKE item and counts the closed verdicts
on top of the rule-based ones, :attr:`~medmo_agent.evaluation.compat.Deviation.
SLAKE_JUDGE_CLOSED_TWICE`). The counting itself is in
:func:`~medmo_agent.evaluation.aggregate.vqa_metrics`.

The runner builds an :class:`LlmJudge` with :meth:`LlmJudge.from_settings` (``None`` when
no ``judge_model`` is set), passes :meth:`LlmJudge.runner_judge` to ``run_eval(judge=...)``
and offers :data:`JUDGE_SETTINGS` as command-line options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from medmo_agent.errors import BackendError, ConfigError
from medmo_agent.evaluation.compat import Compat, check_compat
from medmo_agent.evaluation.extraction import extract_tag, pre_extract

if TYPE_CHECKING:
    from medmo_agent.backends.base import Backend
    from medmo_agent.config import Settings

JUDGE_SETTINGS: tuple[str, ...] = (
    "judge_model",
    "judge_base_url",
    "judge_api_key",
    "judge_max_new_tokens",
    "judge_concurrency",
)
"""The :class:`~medmo_agent.config.Settings` fields an evaluation command offers as options."""

JUDGE_TEMPLATE = """
Your task is to determine whether the user's answer is correct based on the provided questions and standard answers (for example, if the user expresses a similar meaning to the standard answer, or another interpretation of the standard answer, it is considered correct.)

The question is: {question}

The standard answer: {answer}

The user's answer: {response}

Please strictly follow the following format for output(0 represents correct, 1 represents incorrect):
<think>{{your concise think step}}</think>
<judge>{{0/1}}</judge>

for example:
<think>The standard answer is right, and the user's answer is right frontal lobe, they express the same meaning, so it is correct.</think>
<judge>0</judge>
    """  # noqa: E501  (MedEvalKit's wording, line for line, so verdicts compare like for like)
"""MedEvalKit's judge prompt; ``str.format`` fields ``question``, ``answer``, ``response``."""


def judge_prompt(question: str, answer: str, response: str) -> str:
    """The judge's user turn for one item.

    Args:
        question: the benchmark's raw question.
        answer: the gold answer.
        response: the answer judged (see :func:`judged_response`).
    """
    return JUDGE_TEMPLATE.format(question=question, answer=answer, response=response)


def parse_verdict(reply: str | None) -> bool:
    """Whether a judge reply says correct: the ``<judge>`` content (all tags joined) is ``0``.

    Without a tag the whole reply is compared, so a bare ``0`` counts as correct, as in
    MedEvalKit; ``None`` (no reply) is wrong.
    """
    return extract_tag(reply or "", "judge") == "0"


def judged_response(benchmark: str, response: str) -> str:
    """The part of a raw response the judge sees (MedEvalKit's per-benchmark first pass)."""
    text = pre_extract(response)
    if benchmark in ("vqa_rad", "path_vqa"):
        return text.lower().strip()
    return text


JUDGED_BENCHMARKS: tuple[str, ...] = ("vqa_rad", "path_vqa", "slake")
"""The benchmarks MedEvalKit's judge scores (MMMU's open items keep MMMU's own rule)."""


def needs_judge(benchmark: str, kind: Literal["open", "close"], compat: Compat) -> bool:
    """Whether an item goes to the judge: open items of :data:`JUDGED_BENCHMARKS`, and
    SLAKE's closed items under ``compat="medevalkit"``."""
    compat = check_compat(compat)
    if benchmark not in JUDGED_BENCHMARKS:
        return False
    if kind == "open":
        return True
    return benchmark == "slake" and compat == "medevalkit"


@dataclass(frozen=True)
class JudgeVerdict:
    """One judge call, kept with the item.

    Attributes:
        model: the judge model.
        prompt: the user turn sent.
        reply: the judge's raw reply (``None`` when the call failed).
        correct: :func:`parse_verdict` of the reply; ``None`` when the call failed.
        error: why the call failed, else ``None``.
    """

    model: str
    prompt: str
    reply: str | None
    correct: bool | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored under ``verdict["judge"]`` per item)."""
        return asdict(self)


def item_correct(
    benchmark: str,
    kind: Literal["open", "close"],
    rule_correct: bool,
    verdict: JudgeVerdict | None,
    compat: Compat = "correct",
) -> bool | None:
    """An item's verdict once the judge has spoken.

    Correct scoring: closed items keep the rule; open items take the judge (``None`` when
    its call failed, so the item is reported as unscored rather than wrong). MedEvalKit:
    the judge's verdict replaces the item's for every judged item, a failed call is wrong.
    """
    if verdict is None:
        return rule_correct
    if check_compat(compat) == "medevalkit":
        return bool(verdict.correct)
    if kind == "close":
        return rule_correct
    return verdict.correct


def verdicts_for_metrics(verdicts: Sequence[JudgeVerdict | None]) -> list[bool]:
    """Per-item judge booleans for :func:`~medmo_agent.evaluation.aggregate.vqa_metrics`.

    Items not judged, and failed calls, count as ``False`` (MedEvalKit's reading of a
    missing reply); failed calls are listed with the failed items in the report.
    """
    return [bool(v is not None and v.correct) for v in verdicts]


class LlmJudge:
    """Asks a judge model through a backend (normally the OpenAI-compatible one)."""

    def __init__(
        self, backend: Backend, model: str, *, max_new_tokens: int = 4096, concurrency: int = 8
    ) -> None:
        """Wrap a backend.

        Args:
            backend: where the judge runs; :meth:`from_settings` builds the OpenAI one.
            model: the judge model's name, recorded with each verdict.
            max_new_tokens: reply length cap (MedEvalKit: 4096).
            concurrency: judge calls in flight at once, at least 1.
        """
        if concurrency < 1:
            raise ConfigError(
                f"judge_concurrency must be at least 1, got {concurrency}.",
                input="judge_concurrency",
                fix="Set MEDMO_JUDGE_CONCURRENCY to 1 or more.",
            )
        self.backend = backend
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency

    @classmethod
    def from_settings(cls, settings: Settings) -> LlmJudge | None:
        """The judge the settings ask for, or ``None`` when ``judge_model`` is unset.

        Raises:
            ConfigError: a judge model without a ``judge_base_url``.
        """
        if not settings.judge_model:
            return None
        if not settings.judge_base_url:
            raise ConfigError(
                f"The judge model {settings.judge_model!r} has no server to run on.",
                input="judge_base_url",
                fix="Pass --judge-base-url (MEDMO_JUDGE_BASE_URL), e.g. "
                "https://api.openai.com/v1 or http://gpu-host:8000/v1.",
            )
        from medmo_agent.backends.openai_compat import OpenAICompatBackend

        backend = OpenAICompatBackend(
            settings.judge_base_url,
            settings.judge_model,
            api_key=settings.judge_api_key,
            timeout_s=settings.request_timeout_s,
            retries=settings.retries,
            max_new_tokens=settings.judge_max_new_tokens,
            max_new_tokens_limit=max(settings.judge_max_new_tokens, settings.max_new_tokens_limit),
            temperature=0.0,
        )
        return cls(
            backend,
            settings.judge_model,
            max_new_tokens=settings.judge_max_new_tokens,
            concurrency=settings.judge_concurrency,
        )

    def judge(self, question: str, answer: str, response: str) -> JudgeVerdict:
        """Judge one answer; a backend failure is recorded in the verdict, not raised."""
        from medmo_agent.backends.base import GenerationRequest
        from medmo_agent.types import Message

        prompt = judge_prompt(question, answer, response)
        request = GenerationRequest(
            [Message("user", prompt)], max_new_tokens=self.max_new_tokens, temperature=0.0
        )
        try:
            reply = self.backend.generate(request).text
        except BackendError as exc:
            # one failed call must not stop the run: the item records it and the run goes on
            return JudgeVerdict(self.model, prompt, None, None, f"{type(exc).__name__}: {exc}")
        return JudgeVerdict(self.model, prompt, reply, parse_verdict(reply))

    def judge_item(
        self,
        benchmark: str,
        kind: Literal["open", "close"],
        question: str,
        answer: str,
        response: str,
        compat: Compat = "correct",
    ) -> JudgeVerdict | None:
        """Judge one benchmark item when :func:`needs_judge` says so, else ``None``.

        Args:
            benchmark: the benchmark id.
            kind: the item's kind as scored (``VqaItemScore.kind``).
            question: the raw question (without the prompt's suffix).
            answer: the gold answer.
            response: the model's raw response (:func:`judged_response` is applied).
            compat: the scoring mode.
        """
        if not needs_judge(benchmark, kind, compat):
            return None
        return self.judge(question, answer, judged_response(benchmark, response))

    def runner_judge(self, compat: Compat = "correct") -> Callable[[Any, str], dict[str, Any]]:
        """This judge in the evaluation runner's shape: ``judge(item, response) -> dict``.

        ``item`` is the runner's item (``benchmark``, ``question``, ``answer``); the dict is
        :meth:`JudgeVerdict.to_dict`: ``correct`` is the judge's verdict, ``None`` when the
        call failed in either scoring mode (the runner leaves that item unscored and asks
        the judge again on a re-run rather than counting a network failure as wrong).
        """
        compat = check_compat(compat)

        def judge(item: Any, response: str) -> dict[str, Any]:
            text = judged_response(item.benchmark, response)
            verdict = self.judge(item.question, item.answer, text)
            correct = None
            if verdict.correct is not None:
                correct = item_correct(item.benchmark, "open", False, verdict, compat)
            return {**verdict.to_dict(), "correct": correct}

        return judge

    def judge_many(self, items: Sequence[tuple[str, str, str]]) -> list[JudgeVerdict]:
        """Judge ``(question, answer, response)`` triples concurrently, in input order."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(lambda t: self.judge(*t), items))

    def close(self) -> None:
        """Close the backend's connections."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
