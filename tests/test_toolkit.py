"""The toolkit: every task over a scripted backend (exact answers) and over the real
transformers backend on the tiny random checkpoint (structure only: its answers are junk)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo_agent.backends.base import Backend, Completion, GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, InputError, LimitExceededError, MedmoError
from medmo_agent.imaging.geometry import model_input_size
from medmo_agent.tasks.results import (
    ClassificationResult,
    DetectionResult,
    GroundingResult,
    ReasoningResult,
    ReportResult,
    SummaryResult,
    TextQAResult,
    VQAResult,
)
from medmo_agent.toolkit import TOOL_NAMES, Toolkit
from medmo_agent.types import ImageMeta, ImagePart, MedImage

SETTINGS = Settings(backend="scripted")


@pytest.fixture
def xray(tmp_path: Path) -> Path:
    """A 2000x1500 grayscale PNG; the model sees it as 1152x864 (scale 125/72)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(1500, 2000), dtype=np.uint8)
    path = tmp_path / "chest.png"
    Image.fromarray(arr).save(path)
    return path


def kit(*replies: str) -> tuple[Toolkit, ScriptedBackend]:
    backend = ScriptedBackend(list(replies))
    return Toolkit(backend, SETTINGS), backend


def prompt_text(backend: ScriptedBackend, i: int = -1) -> str:
    return "\n".join(m.text for m in backend.requests[i].messages)


# -- scripted: each task, exact answers ------------------------------------------------------


def test_vqa_closed_question_gets_the_yes_no_suffix_and_a_boolean(xray):
    tk, backend = kit("Yes.")
    result = tk.vqa(xray, "Is there a pneumothorax?")
    assert isinstance(result, VQAResult)
    assert result.question_type == "closed" and result.yes_no is True
    assert "Please output 'yes' or 'no'(no extra output)." in prompt_text(backend)
    assert backend.requests[0].messages[0].text == "You are a medical imaging expert."
    assert result.model == "scripted" and result.backend == "scripted"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens == 1
    assert result.image.handle == str(xray)
    assert result.image.meta.original_size == (2000, 1500)


def test_vqa_multiple_choice_lists_lettered_options_and_reads_the_letter(xray):
    tk, backend = kit("<think>Air under the diaphragm.</think><answer>(C)</answer>")
    result = tk.vqa(xray, "What is seen?", options=["effusion", "mass", "free air"])
    assert "A. effusion\nB. mass\nC. free air" in prompt_text(backend)
    assert "Answer with the option's letter from the given choices directly." in prompt_text(
        backend
    )
    assert (result.choice, result.choice_text) == ("C", "free air")
    assert result.summary() == "C. free air"


def test_vqa_open_question_is_sent_verbatim(xray):
    tk, backend = kit("The left lower lobe.")
    result = tk.vqa(xray, "Where is the opacity?")
    assert backend.requests[0].messages[-1].text == "Where is the opacity?"
    assert result.question_type == "open" and result.answer == "The left lower lobe."


def test_vqa_sends_the_image_before_the_text(xray):
    tk, backend = kit("No")
    tk.vqa(xray, "Is the heart enlarged?")
    parts = backend.requests[0].messages[-1].parts
    assert isinstance(parts[0], ImagePart) and parts[0].image.size == (2000, 1500)


@pytest.mark.parametrize(
    ("kwargs", "error", "input_name"),
    [
        ({"question": "  "}, InputError, "question"),
        ({"question": "Which?", "options": ["only one"]}, InputError, "options"),
        ({"question": "Which?", "max_new_tokens": 0}, InputError, "max_new_tokens"),
        ({"question": "Which?", "max_new_tokens": 100_000}, LimitExceededError, "max_new_tokens"),
    ],
)
def test_vqa_rejects_bad_input_before_calling_the_model(xray, kwargs, error, input_name):
    tk, backend = kit("unused")
    with pytest.raises(error) as info:
        tk.vqa(xray, **kwargs)
    assert info.value.input == input_name and info.value.fix
    assert backend.requests == []


def test_max_new_tokens_within_the_limit_reaches_the_backend(xray):
    tk, backend = kit("Yes")
    tk.vqa(xray, "Is it normal?", max_new_tokens=32)
    assert backend.requests[0].max_new_tokens == 32


def test_a_missing_image_is_a_clear_error(tmp_path):
    tk, backend = kit("unused")
    with pytest.raises(ImageLoadError) as info:
        tk.report(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)
    assert backend.requests == []


def test_an_empty_image_argument_is_an_input_error():
    tk, _ = kit("unused")
    with pytest.raises(InputError):
        tk.report("")


def test_data_uri_images_get_a_reusable_handle(xray):
    tk, _ = kit("Findings: Clear lungs.", "Yes")
    uri = "data:image/png;base64," + base64.b64encode(xray.read_bytes()).decode()
    first = tk.report(uri)
    assert first.image.handle.startswith("medmo://images/")
    again = tk.vqa(first.image.handle, "Is it normal?")
    assert again.image.handle == first.image.handle
    assert again.image.meta.original_size == (2000, 1500)


def test_text_qa_sends_no_image_and_reads_the_choice():
    tk, backend = kit("The answer is B")
    result = tk.text_qa(
        "First-line drug for anaphylaxis?", options={"A": "Diphenhydramine", "B": "Epinephrine"}
    )
    assert isinstance(result, TextQAResult)
    assert backend.requests[0].images == []
    assert (result.choice, result.choice_text) == ("B", "Epinephrine")
    assert result.image is None


def test_report_splits_findings_and_impression(xray):
    tk, backend = kit(
        "FINDINGS: Right lower lobe consolidation. No effusion.\n"
        "IMPRESSION: Right lower lobe pneumonia."
    )
    result = tk.report(xray, context="Fever and cough.")
    assert isinstance(result, ReportResult)
    assert result.findings == "Right lower lobe consolidation. No effusion."
    assert result.impression == "Right lower lobe pneumonia."
    text = prompt_text(backend)
    assert "Generate a detailed radiology report based on the given medical image." in text
    assert "Clinical context: Fever and cough." in text


def test_ground_maps_model_pixels_onto_the_original_image(xray):
    tk, backend = kit(
        "Nodule <box>[[576, 432, 1152, 864], [288, 216, 576, 432]]</box>\n"
        "Effusion: [ [0, 0, 115.2, 86.4] ]"
    )
    result = tk.ground(xray, ["nodule", "effusion"])
    assert isinstance(result, GroundingResult)
    assert "nodule, effusion" in prompt_text(backend) and "in pixel values" in prompt_text(backend)
    assert [(b.label, b.xyxy) for b in result.boxes] == [
        ("Nodule", (1000.0, 750.0, 2000.0, 1500.0)),
        ("Nodule", (500.0, 375.0, 1000.0, 750.0)),
        ("Effusion", (0.0, 0.0, 200.0, 150.0)),
    ]
    assert result.coordinate_space == "pixel" and result.found
    assert result.image_size == (2000, 1500)
    assert result.targets == ["nodule", "effusion"]
    assert result.boxes[0].x1_norm == 0.5 and result.boxes[0].y2_norm == 1.0


def test_ground_without_targets_asks_for_all_abnormalities(xray):
    tk, backend = kit("No Finding")
    result = tk.ground(xray)
    assert "Detect any visible diseases or abnormalities" in prompt_text(backend)
    assert result.boxes == [] and result.found is False
    assert result.summary() == "No findings localised."


def test_ground_reads_qwen_0_1000_answers(xray):
    tk, _ = kit('```json\n[{"bbox_2d": [500, 500, 1000, 1000], "label": "mass"}]\n```')
    result = tk.ground(xray, "mass")
    assert result.coordinate_space == "relative_1000"
    assert result.boxes[0].xyxy == (1000.0, 750.0, 2000.0, 1500.0)


def test_ground_gives_box_sizes_in_mm_when_pixel_spacing_is_known():
    meta = ImageMeta(
        source="inline", format="dicom", modality="CR", original_size=(400, 300),
        pixel_spacing=(0.2, 0.1),
    )  # fmt: skip
    image = MedImage(pixels=np.zeros((300, 400, 3), dtype=np.uint8), meta=meta)
    backend = ScriptedBackend(["mass: [0, 0, 100, 100]"])
    tk = Toolkit(backend, SETTINGS)
    result = tk.ground(image, ["mass"])
    seen = model_input_size((400, 300))
    box = result.boxes[0]
    assert box.xyxy == pytest.approx((0, 0, 100 * 400 / seen[0], 100 * 300 / seen[1]), abs=0.1)
    assert box.width_mm == pytest.approx(box.x2 * 0.1, abs=0.05)
    assert box.height_mm == pytest.approx(box.y2 * 0.2, abs=0.05)
    assert "X-ray image" in prompt_text(backend)
    assert result.image.handle.startswith("medmo://images/")


def test_detect_counts_objects_per_label(xray):
    tk, backend = kit(
        "Cell: <box> [ 0, 0, 57.6, 43.2 ] [ 115.2, 86.4, 172.8, 129.6 ] </box>\n"
        "Bacteria: [ [576, 432, 633.6, 475.2] ]"
    )
    result = tk.detect(xray, "cell")
    assert isinstance(result, DetectionResult)
    assert "Detect and localize all cells. For each cell" in prompt_text(backend)
    assert result.counts == {"Cell": 2, "Bacteria": 1}
    assert result.boxes[1].xyxy == (200.0, 150.0, 300.0, 225.0)
    assert result.summary() == "Detected 3 (Cell: 2, Bacteria: 1)."


def test_detect_rejects_an_empty_label(xray):
    tk, backend = kit("unused")
    with pytest.raises(InputError):
        tk.detect(xray, " ")
    assert backend.requests == []


def test_classify_maps_answers_to_chest_xray14_labels(xray):
    tk, backend = kit("Effusion | pleural thickening | Cardiomegaly")
    result = tk.classify(xray)
    assert isinstance(result, ClassificationResult)
    assert "If there are no findings, state 'No Finding'." in prompt_text(backend)
    assert result.labels == ["Effusion", "Pleural_Thickening", "Cardiomegaly"]
    assert len(result.candidate_labels) == 15


def test_classify_with_own_labels_and_free_labels(xray):
    tk, backend = kit("melanoma", "Granuloma, calcified nodule")
    own = tk.classify(xray, ["Melanoma", "Nevus"])
    assert own.labels == ["Melanoma"]
    assert "Melanoma, Nevus" in prompt_text(backend, 0)
    free = tk.classify(xray, [])
    assert free.labels == ["Granuloma", "calcified nodule"] and free.candidate_labels == []


def test_reason_returns_steps_and_the_answer(xray):
    tk, backend = kit(
        "<think>1. The right hemidiaphragm is flattened.\n2. Lung markings are absent laterally."
        "</think>\n<answer>Right pneumothorax</answer>"
    )
    result = tk.reason(xray, "What explains the dyspnoea?", context="Tall young man.")
    assert isinstance(result, ReasoningResult)
    assert result.steps == [
        "The right hemidiaphragm is flattened.",
        "Lung markings are absent laterally.",
    ]
    assert result.answer == "Right pneumothorax"
    assert "<answer>" in prompt_text(backend) and "Tall young man." in prompt_text(backend)


def test_summarize_and_summarize_report_give_key_findings():
    report = "Findings: Large right effusion. Mild cardiomegaly. Impression: Effusion."
    reply = (
        "- Large right pleural effusion\n- Mild cardiomegaly\nSummary: Effusion and cardiomegaly."
    )
    tk, backend = kit(reply)
    for method in (tk.summarize, tk.summarize_report):
        result = method(report)
        assert isinstance(result, SummaryResult)
        assert result.key_findings == ["Large right pleural effusion", "Mild cardiomegaly"]
        assert result.summary_text == "Effusion and cardiomegaly."
    assert report in prompt_text(backend) and backend.requests[0].images == []
    with pytest.raises(InputError):
        tk.summarize("   ")


def test_on_text_streams_the_answer_and_cancel_stops_it(xray):
    tk, _ = kit("The lungs are clear.")
    pieces: list[str] = []
    result = tk.vqa(xray, "Describe the lungs.", on_text=pieces.append)
    assert "".join(pieces) == result.raw_text == "The lungs are clear."
    cancel = threading.Event()
    cancel.set()
    stopped = tk.report(xray, on_text=pieces.append, cancel=cancel)
    assert any("cancelled" in n for n in stopped.notes)


def test_tools_are_the_bound_methods_named_as_surfaces_expose_them():
    tk, _ = kit()
    tools = tk.tools()
    assert [t.__name__ for t in tools] == list(TOOL_NAMES)
    assert all(t.__self__ is tk for t in tools)
    for tool in tools:
        assert "Returns:" in tool.__doc__
    for name in ("vqa", "ground", "report", "reason", "classify", "detect"):
        assert "medmo://images/" in getattr(tk, name).__doc__


def test_the_backend_is_created_from_settings_on_first_use_only(xray):
    tk = Toolkit(settings=Settings(backend="scripted", model="my-model"))
    assert tk._backend is None
    assert tk.info() == {"backend": "scripted", "model": "my-model"}
    first = tk.backend
    tk.vqa(xray, "Is it normal?")
    assert tk.backend is first


def test_every_toolkit_error_is_a_medmo_error(xray):
    tk, _ = kit("x")
    for call in (
        lambda: tk.vqa(xray, ""),
        lambda: tk.vqa(xray, "Which?", question_type="essay"),
        lambda: tk.text_qa("Q?", options=[]),
        lambda: tk.classify(xray, "Effusion"),
        lambda: tk.ground(xray, 42),
        lambda: tk.reason(xray, ""),
    ):
        with pytest.raises(MedmoError):
            call()


# -- the real transformers path on the tiny random checkpoint --------------------------------


class Recording(Backend):
    """Passes requests to a real backend and keeps its completions for inspection."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.completions: list[Completion] = []

    def generate(self, request: GenerationRequest, on_text=None, cancel=None) -> Completion:
        completion = self.inner.generate(request, on_text=on_text, cancel=cancel)
        self.completions.append(completion)
        return completion


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "small.png"
    Image.fromarray(rng.integers(0, 255, size=(120, 200, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tiny_kit(tiny_backend, tiny_settings):
    return Toolkit(Recording(tiny_backend), tiny_settings)


TINY_CALLS = {
    "vqa": lambda tk, img: tk.vqa(img, "Is there a fracture?", max_new_tokens=6),
    "vqa_choice": lambda tk, img: tk.vqa(img, "Which?", options=["a", "b"], max_new_tokens=4),
    "report": lambda tk, img: tk.report(img, context="cough", max_new_tokens=6),
    "ground": lambda tk, img: tk.ground(img, ["nodule"], max_new_tokens=6),
    "detect": lambda tk, img: tk.detect(img, "cell", max_new_tokens=6),
    "classify": lambda tk, img: tk.classify(img, max_new_tokens=6),
    "reason": lambda tk, img: tk.reason(img, "Why?", max_new_tokens=6),
    "text_qa": lambda tk, img: tk.text_qa("What is an X-ray?", max_new_tokens=6),
    "summarize": lambda tk, img: tk.summarize_report("Findings: clear.", max_new_tokens=6),
}


@pytest.mark.parametrize("task", list(TINY_CALLS))
def test_every_tool_runs_end_to_end_on_the_tiny_checkpoint(tiny_kit, small_png, task):
    result = TINY_CALLS[task](tiny_kit, small_png)
    assert type(result).model_validate(result.model_dump()) == result
    assert isinstance(result.raw_text, str)
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.backend == "transformers" and result.model
    completion = tiny_kit.backend.completions[-1]
    assert result.raw_text == completion.text
    if task in ("text_qa", "summarize"):
        assert result.image is None and completion.image_input_sizes == []
    else:
        assert result.image.meta.original_size == (200, 120)
        assert completion.image_input_sizes == [
            model_input_size((200, 120), tiny_kit.settings.min_pixels, tiny_kit.settings.max_pixels)
        ]
    if task in ("ground", "detect"):
        assert result.image_size == (200, 120)
        assert not any("did not report" in n for n in result.notes)
        for b in result.boxes:
            assert 0 <= b.x1 < b.x2 <= 200 and 0 <= b.y1 < b.y2 <= 120


def test_an_answer_cut_off_at_max_new_tokens_says_how_to_get_the_rest(xray):
    class CutOff(ScriptedBackend):
        def generate(self, request, on_text=None, cancel=None):
            completion = super().generate(request, on_text, cancel)
            completion.finish_reason = "length"
            return completion

    tk = Toolkit(CutOff(["Findings: The lungs are"]), SETTINGS)
    result = tk.report(xray, max_new_tokens=5)
    assert any("max_new_tokens" in n and "cut off" in n for n in result.notes)


def test_a_backend_that_reports_no_input_size_gets_it_computed(xray):
    class NoSizes(ScriptedBackend):
        def generate(self, request, on_text=None, cancel=None):
            completion = super().generate(request, on_text, cancel)
            completion.image_input_sizes = []
            return completion

    tk = Toolkit(NoSizes(["mass: [576, 432, 1152, 864]"]), SETTINGS)
    result = tk.ground(xray, "mass")
    assert result.boxes[0].xyxy == (1000.0, 750.0, 2000.0, 1500.0)
    assert any("did not report" in n for n in result.notes)
