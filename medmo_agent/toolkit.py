"""THE tool surface: typed, documented functions over one backend.

MCP tools, LangChain tools, widgets, the CLI and case reviews all call these and nothing
else. Each method resolves its image argument (a path, a data URI, or a handle the
process already holds), builds the task's prompt, asks the backend, and parses the answer
into a result model that keeps the raw text. Method docstrings are written for an LLM
caller: they double as tool descriptions.
"""

from __future__ import annotations

import threading
from typing import Literal

from .backends.base import TextCallback  # runtime import: tool schemas resolve these hints
from .tasks import classify as classify_task
from .tasks import detect as detect_task
from .tasks import ground as ground_task
from .tasks import reason as reason_task
from .tasks import report as report_task
from .tasks import summarize as summarize_task
from .tasks import text_qa as text_qa_task
from .tasks import vqa as vqa_task
from .tasks._common import normalize_options
from .tasks.results import (
    ClassificationResult,
    DetectionResult,
    GroundingResult,
    ReasoningResult,
    ReportResult,
    SummaryResult,
    TextQAResult,
    VQAResult,
)
from .toolkit_core import TOOL_NAMES, ImageInput, ToolkitCore

__all__ = ["TOOL_NAMES", "ImageInput", "Toolkit"]


class Toolkit(ToolkitCore):
    """MedMO's tasks as plain Python functions over one shared backend.

    Args:
        backend: The model; defaults to ``create_backend(settings)`` on first use.
        settings: Configuration; defaults to ``Settings.from_env()``.
        resolver: Turns image arguments into images, enforcing allowed folders;
            defaults to one that reads any local path.
    """

    # -- tools ----------------------------------------------------------------------------

    def vqa(
        self,
        image: ImageInput,
        question: str,
        *,
        options: list[str] | dict[str, str] | None = None,
        question_type: Literal["open", "closed", "multiple_choice"] | None = None,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> VQAResult:
        """Answer a question about a medical image (X-ray, CT, MRI, ultrasound, pathology,
        dermatology, fundus, ...).

        Use it for any direct question about what an image shows: "Is there a
        pneumothorax?", "Which organ is abnormal?", or a multiple-choice question with
        ``options``. Yes/no questions get a one-word answer; with options the model picks
        a letter.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            question: The question, in plain language.
            options: Answer options for a multiple-choice question: a list (lettered A, B,
                C, ...) or a mapping letter -> text; at least two.
            question_type: ``open``, ``closed`` (yes/no) or ``multiple_choice``; detected
                from the question and options when left out.
            window: CT/MR intensity window preset (lung, bone, brain, ...) or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens.

        Returns:
            The answer (``answer``), ``yes_no`` for closed questions, ``choice`` and
            ``choice_text`` for multiple choice, the raw text, and the image handle.
        """
        self._check_text(question=question, options=options)
        max_new_tokens = self._check_tokens(max_new_tokens)
        question = vqa_task.check_question(question)  # before loading the image
        if options is not None:
            normalize_options(options)
        img = self.load(image, window=window, slice=slice, frame=frame, plane=plane)
        messages = vqa_task.build_messages(
            img, question, options=options, question_type=question_type
        )
        completion = self._generate(messages, max_new_tokens, on_text, cancel)
        result = vqa_task.parse(
            completion.text, question=question, options=options, question_type=question_type
        )
        return self._finish(result, completion, img)  # type: ignore[return-value]

    def text_qa(
        self,
        question: str,
        *,
        options: list[str] | dict[str, str] | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TextQAResult:
        """Answer a medical knowledge question without an image.

        Use it for clinical knowledge (drug effects, guidelines, differential diagnosis
        from a text vignette), optionally as multiple choice.

        Args:
            question: The question or clinical vignette.
            options: Answer options: a list (lettered A, B, ...) or a mapping letter -> text.
            max_new_tokens: Cap on generated tokens.

        Returns:
            The answer, and for multiple choice the chosen ``choice`` letter and its text.
        """
        self._check_text(question=question, options=options)
        max_new_tokens = self._check_tokens(max_new_tokens)
        messages = text_qa_task.build_messages(question, options=options)
        completion = self._generate(messages, max_new_tokens, on_text, cancel)
        result = text_qa_task.parse(completion.text, question=question.strip(), options=options)
        return self._finish(result, completion, None)  # type: ignore[return-value]

    def report(
        self,
        image: ImageInput,
        *,
        context: str | None = None,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ReportResult:
        """Write a radiology report for a medical image, with Findings and Impression.

        Use it for a full structured read of an image, e.g. as a first step before
        asking targeted questions or localising findings.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            context: Optional clinical context (indication, history) for the report.
            window: CT/MR intensity window preset or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens (reports are long: 512 or more).

        Returns:
            ``findings``, ``impression`` and the full ``report`` text.
        """
        self._check_text(context=context)
        max_new_tokens = self._check_tokens(max_new_tokens)
        img = self.load(image, window=window, slice=slice, frame=frame, plane=plane)
        completion = self._generate(
            report_task.build_messages(img, context=context), max_new_tokens, on_text, cancel
        )
        return self._finish(report_task.parse(completion.text), completion, img)  # type: ignore[return-value]

    def ground(
        self,
        image: ImageInput,
        targets: list[str] | str | None = None,
        *,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GroundingResult:
        """Localise findings or anatomy in a medical image with bounding boxes.

        Use it to find where something is: named targets ("nodule", "left lung",
        "fracture") or, with no targets, every visible abnormality. Boxes come back in
        the original image's pixel coordinates (x1, y1, x2, y2; origin top-left), also
        normalised 0-1, and in mm when the pixel spacing is known.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            targets: Findings or anatomical regions to localise; leave out for all
                abnormalities.
            window: CT/MR intensity window preset or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens.

        Returns:
            ``boxes`` (label and coordinates), ``found`` (False when the model reported no
            finding), the image size, and notes on anything repaired or dropped.
        """
        self._check_text(targets=targets)
        names = ground_task.normalize_targets(targets)
        return self._boxes(
            lambda img: ground_task.build_messages(img, names),
            ground_task.parse,
            image,
            {"window": window, "slice": slice, "frame": frame, "plane": plane},
            (max_new_tokens, on_text, cancel),
            targets=names,
        )

    def detect(
        self,
        image: ImageInput,
        label: str = "cell",
        *,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> DetectionResult:
        """Detect and count many small objects of one kind: cells, bacteria, nuclei,
        lesions, polyps.

        Use it on microscopy, pathology or any image with many instances to box and
        count; use ``ground`` for a few named findings instead.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            label: What to detect, singular (e.g. "cell", "bacterium", "lesion").
            window: CT/MR intensity window preset or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens (many boxes need many tokens).

        Returns:
            ``boxes`` in original-image pixels and ``counts`` per label.
        """
        self._check_text(label=label)
        label = detect_task.check_label(label)  # before loading the image
        return self._boxes(
            lambda img: detect_task.build_messages(img, label),
            detect_task.parse,
            image,
            {"window": window, "slice": slice, "frame": frame, "plane": plane},
            (max_new_tokens, on_text, cancel),
            label=label,
        )  # type: ignore[return-value]

    def classify(
        self,
        image: ImageInput,
        labels: list[str] | None = None,
        *,
        free: bool = False,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ClassificationResult:
        """Say which disease labels apply to a medical image.

        Without ``labels`` it uses the 15 NIH ChestX-ray14 labels (Atelectasis,
        Cardiomegaly, Consolidation, Edema, Effusion, Emphysema, Fibrosis, Hernia,
        Infiltration, Mass, Nodule, Pleural_Thickening, Pneumonia, Pneumothorax,
        No Finding), as MedMO was trained for chest X-rays. Give your own ``labels`` for
        other images, or ``labels=[]`` to let the model name the abnormalities freely.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            labels: Candidate labels; None for the chest X-ray set, [] for free labels.
            free: Let the model name abnormalities freely (same as ``labels=[]``).
            window: CT/MR intensity window preset or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens.

        Returns:
            ``labels`` present (canonical names), ``no_finding``, and ``unmatched`` answer
            terms that fit no candidate.
        """
        self._check_text(labels=labels)
        max_new_tokens = self._check_tokens(max_new_tokens)
        img = self.load(image, window=window, slice=slice, frame=frame, plane=plane)
        messages = classify_task.build_messages(img, labels, free=free)
        completion = self._generate(messages, max_new_tokens, on_text, cancel)
        result = classify_task.parse(completion.text, labels=labels, free=free)
        return self._finish(result, completion, img)  # type: ignore[return-value]

    def reason(
        self,
        image: ImageInput,
        question: str,
        *,
        context: str | None = None,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ReasoningResult:
        """Reason step by step about a medical image to answer a clinical question.

        Use it for questions that need several observations combined (differential
        diagnosis, staging, "what explains these findings?"); it is slower than ``vqa``.

        Args:
            image: The image: a file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series
                folder, a NIfTI volume), a ``data:image/png;base64,...`` URI, or a
                ``medmo://images/<id>`` handle returned earlier in ``image.handle``.
            question: The clinical question.
            context: Optional clinical context (history, earlier findings).
            window: CT/MR intensity window preset or "WIDTH/LEVEL".
            slice: Slice index of a volume or series.
            frame: Frame index of a multi-frame DICOM.
            plane: axial, coronal or sagittal, for volumes.
            max_new_tokens: Cap on generated tokens (reasoning needs 512 or more).

        Returns:
            ``thinking``, the reasoning ``steps``, and the final ``answer``.
        """
        self._check_text(question=question, context=context)
        max_new_tokens = self._check_tokens(max_new_tokens)
        if not isinstance(question, str) or not question.strip():
            reason_task.build_messages(None, question)  # raises InputError
        img = self.load(image, window=window, slice=slice, frame=frame, plane=plane)
        messages = reason_task.build_messages(img, question, context=context)
        completion = self._generate(messages, max_new_tokens, on_text, cancel)
        result = reason_task.parse(completion.text, question=question.strip())
        return self._finish(result, completion, img)  # type: ignore[return-value]

    def summarize(
        self,
        report_text: str,
        *,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        """Extract the key findings of a radiology report text and summarise it in one
        sentence. No image needed.

        Use it to condense a long report (one you have, or one ``report`` wrote) before
        reasoning over it or presenting it.

        Args:
            report_text: The report text.
            max_new_tokens: Cap on generated tokens.

        Returns:
            ``key_findings`` (a list) and ``summary_text`` (one sentence).
        """
        self._check_text(report_text=report_text)
        max_new_tokens = self._check_tokens(max_new_tokens)
        messages = summarize_task.build_messages(report_text)
        completion = self._generate(messages, max_new_tokens, on_text, cancel)
        return self._finish(summarize_task.parse(completion.text), completion, None)  # type: ignore[return-value]

    def summarize_report(
        self,
        report_text: str,
        *,
        max_new_tokens: int | None = None,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        return self.summarize(
            report_text, max_new_tokens=max_new_tokens, on_text=on_text, cancel=cancel
        )


# the tool name surfaces use for ``summarize``; same behaviour, same description
Toolkit.summarize_report.__doc__ = Toolkit.summarize.__doc__
