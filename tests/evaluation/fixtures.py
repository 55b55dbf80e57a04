"""Tiny copies of every benchmark in its published schema and file layout.

``write_fixtures(root)`` writes ``root/<benchmark id>/`` as the Hugging Face repository
holds it (parquet shards per split and config, SLAKE's ``test.json`` + ``imgs/``, PMC-VQA's
``test_2.csv`` + ``figures/``, OmniMedVQA's ``QA_information`` + ``Images/``, MedXpertQA's
``MM``/``Text`` jsonl + ``images/``, the grounding benchmark's COCO-style
``annotations.json`` + images), with images drawn by PIL, so the loaders read them
through ``datasets`` exactly as they read the hub's files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from medmo_agent.evaluation.benchmarks import MMLU_SUBJECTS, MMMU_SUBJECTS


def draw(seed: int, size: int = 64) -> Image.Image:
    """A small grey image with a bright disc whose place depends on ``seed``."""
    img = Image.new("RGB", (size, size), (40, 40, 40))
    d = ImageDraw.Draw(img)
    x = 8 + (seed * 13) % (size - 24)
    y = 8 + (seed * 7) % (size - 24)
    d.ellipse([x, y, x + 16, y + 16], fill=(220, 220, 220))
    return img


def _parquet(path: Path, rows: list[dict[str, Any]], features: Any = None) -> None:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))


def _image_features(**extra: Any) -> Any:
    import datasets

    return datasets.Features(extra)


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


VQA_RAD_ROWS = [
    ("Is there a pneumothorax?", "yes"),
    ("Is the heart enlarged?", "no"),
    ("Which organ is abnormal?", "left lung"),
    ("What modality is this?", "x-ray"),
]
SLAKE_ROWS = [
    # qid, question, answer, answer_type, lang
    (1, "Is the lung healthy?", "no", "CLOSED", "en"),
    (2, "Which plane is the image taken?", "Transverse Plane", "CLOSED", "en"),
    (3, "What diseases are included in the picture?", "pneumonia", "OPEN", "en"),
    (4, "图中的肺是否健康?", "否", "CLOSED", "zh"),
]


def _vqa_rows(rows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"image": draw(i), "question": q, "answer": a} for i, (q, a) in enumerate(rows)]


def write_vqa_rad(root: Path) -> None:
    import datasets

    feats = _image_features(
        image=datasets.Image(), question=datasets.Value("string"), answer=datasets.Value("string")
    )
    _parquet(root / "vqa_rad/data/test-00000-of-00001.parquet", _vqa_rows(VQA_RAD_ROWS), feats)


def write_path_vqa(root: Path) -> None:
    import datasets

    rows = [("Is this tissue necrotic?", "yes"), ("What is present?", "fibrosis")]
    feats = _image_features(
        image=datasets.Image(), question=datasets.Value("string"), answer=datasets.Value("string")
    )
    _parquet(root / "path_vqa/data/test-00000-of-00001.parquet", _vqa_rows(rows), feats)


def write_slake(root: Path) -> None:
    base = root / "slake"
    entries = []
    for i, (qid, q, a, kind, lang) in enumerate(SLAKE_ROWS):
        name = f"xmlab{i}/source.jpg"
        _save(draw(10 + i), base / "imgs" / name)
        entries.append(
            {
                "img_id": i,
                "img_name": name,
                "question": q,
                "answer": a,
                "q_lang": lang,
                "location": "Lung",
                "modality": "X-Ray" if i % 2 else "CT",
                "answer_type": kind,
                "base_type": "vqa",
                "content_type": "Organ",
                "triple": ["vhead", "_", "_"],
                "qid": qid,
            }
        )
    base.mkdir(parents=True, exist_ok=True)
    (base / "test.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")


def write_pmc_vqa(root: Path) -> None:
    base = root / "pmc_vqa"
    rows = [
        ("What imaging is shown?", ["CT", "MRI", "Ultrasound", "PET"], "B"),
        ("Where is the lesion?", ["Liver", "Kidney", "Spleen", "Pancreas"], "A"),
    ]
    base.mkdir(parents=True, exist_ok=True)
    # test_2.csv's columns, in MedEvalKit's order: the answer is the letter
    with open(base / "test_2.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        choice_cols = [f"Choice {x}" for x in "ABCD"]
        w.writerow(["index", "Figure_path", "Caption", "Question", *choice_cols, "Answer", "split"])
        for i, (q, opts, label) in enumerate(rows):
            fig = f"PMC{i}_fig1.jpg"
            _save(draw(20 + i), base / "figures" / fig)
            choices = [f"{x}:{o}" for x, o in zip("ABCD", opts, strict=True)]
            w.writerow([i, fig, "A figure.", q, *choices, label, "test"])


def write_omnimedvqa(root: Path) -> None:
    base = root / "omnimedvqa"
    qa = base / "QA_information" / "Open-access"
    qa.mkdir(parents=True, exist_ok=True)
    rows = [
        ("What modality?", ["CT", "MRI", "X-Ray"], "MRI", "MR"),
        ("Is this normal?", ["normal", "abnormal"], "abnormal", "CT"),
    ]
    entries = []
    for i, (q, opts, gt, modality) in enumerate(rows):
        path = f"Images/Demo/img{i}.png"
        _save(draw(30 + i), base / path)
        entry = {
            "dataset": "Demo",
            "question_id": f"Demo_{i}",
            "question_type": "Modality Recognition",
            "question": q,
            "gt_answer": gt,
            "image_path": path,
            "modality_type": modality,
        }
        entry.update({f"option_{x}": o for x, o in zip("ABCD", opts, strict=False)})
        entries.append(entry)
    (qa / "Demo.json").write_text(json.dumps(entries), encoding="utf-8")


def write_medxpertqa(root: Path) -> None:
    base = root / "medxpertqa_mm"
    opts = {"A": "Pneumonia", "B": "Effusion", "C": "Nodule", "D": "Normal", "E": "Mass"}
    choices = " ".join(f"({k}) {v}" for k, v in opts.items())
    rows = []
    for i, label in enumerate("CA"):
        name = f"MM-{i}-a.jpeg"
        _save(draw(40 + i), base / "images" / name)
        rows.append(
            {
                "id": f"MM-{i}",
                "question": f"A patient has a cough. What is shown?\nAnswer Choices: {choices}",
                "options": opts,
                "label": label,
                "images": [name],
                "medical_task": "Diagnosis",
                "body_system": "Respiratory",
                "question_type": "Reasoning",
            }
        )
    (base / "MM").mkdir(parents=True, exist_ok=True)
    (base / "MM" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = root / "medxpertqa_text" / "Text"
    text.mkdir(parents=True, exist_ok=True)
    trows = [{**r, "id": f"Text-{i}", "images": []} for i, r in enumerate(rows)]
    (text / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trows))


def write_mmmu(root: Path) -> None:
    import datasets

    feats = {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "options": datasets.Value("string"),
        "explanation": datasets.Value("string"),
        **{f"image_{n}": datasets.Image() for n in range(1, 8)},
        "img_type": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "topic_difficulty": datasets.Value("string"),
        "question_type": datasets.Value("string"),
        "subfield": datasets.Value("string"),
    }
    for s, subject in enumerate(MMMU_SUBJECTS):
        rows = []
        for j in range(2):
            mc = j == 0
            rows.append(
                {
                    "id": f"validation_{subject}_{j + 1}",
                    "question": "<image 1> Which structure is marked?"
                    if mc
                    else "How many lesions? <image 1>",
                    "options": str(["Aorta", "Trachea", "Esophagus", "Spine"]) if mc else "[]",
                    "explanation": "",
                    "image_1": draw(50 + s * 2 + j),
                    **{f"image_{n}": None for n in range(2, 8)},
                    "img_type": "['CT']",
                    "answer": "B" if mc else "2",
                    "topic_difficulty": "Easy",
                    "question_type": "multiple-choice" if mc else "open",
                    "subfield": "Radiology",
                }
            )
        path = root / "mmmu_med" / subject / "validation-00000-of-00001.parquet"
        _parquet(path, rows, datasets.Features(feats))


def write_mmlu(root: Path) -> None:
    for s, subject in enumerate(MMLU_SUBJECTS):
        rows = [
            {
                "question": f"Which nerve supplies the diaphragm? ({subject})",
                "subject": subject,
                "choices": ["Vagus", "Phrenic", "Hypoglossal", "Radial"],
                "answer": 1,
            }
        ]
        _parquet(root / "mmlu_med" / subject / "test-00000-of-00001.parquet", rows)
        del s


def write_pubmedqa(root: Path) -> None:
    rows = [
        {
            "id": f"pqa{i}",
            "data": {
                "Question": q,
                "Context": ["Background paragraph.", "Results paragraph."],
                "Options": {"A": "yes", "B": "no", "C": "maybe"},
                "Correct Option": letter,
                "Correct Answer": {"A": "yes", "B": "no", "C": "maybe"}[letter],
                "Long Answer": "",
            },
        }
        for i, (q, letter) in enumerate(
            [
                ("Does aspirin reduce risk?", "A"),
                ("Is the test accurate?", "B"),
                ("Does it help?", "C"),
            ]
        )
    ]
    _parquet(root / "pubmedqa/data/test-00000-of-00001.parquet", rows)


def write_medmcqa(root: Path) -> None:
    rows = [
        {
            "id": f"mcqa{i}",
            "question": q,
            "opa": "Insulin",
            "opb": "Glucagon",
            "opc": "Cortisol",
            "opd": "Thyroxine",
            "cop": cop,
            "choice_type": "single",
            "exp": "",
            "subject_name": "Physiology",
            "topic_name": "",
        }
        for i, (q, cop) in enumerate([("Lowers blood glucose?", 0), ("Raises blood glucose?", 1)])
    ]
    _parquet(root / "medmcqa/data/validation-00000-of-00001.parquet", rows)


def write_medqa(root: Path) -> None:
    opts = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Alteplase"}
    rows = [
        {
            "question": "A 60-year-old man has chest pain. First drug?",
            "answer": "Aspirin",
            "options": opts,
            "meta_info": "step1",
            "answer_idx": "A",
            "metamap_phrases": ["chest pain"],
        }
    ]
    _parquet(root / "medqa/data/test-00000-of-00001.parquet", rows)


def write_medbullets(root: Path) -> None:
    texts = ["Asthma", "COPD", "Pneumonia", "Embolism", "Sarcoidosis"]
    common = {"question": "A smoker with wheeze. Diagnosis?", "answer": "COPD", "answer_idx": "B"}
    # op4 keeps its options in one letter -> text mapping, op5 in opa..ope
    op4 = {**common, "options": dict(zip("ABCD", texts, strict=False)), "meta_info": ""}
    _parquet(root / "medbullets_op4/data/train-00000-of-00001.parquet", [op4])
    op5 = {**common, **{f"op{k}": texts[i] for i, k in enumerate("abcde")}, "explanation": ""}
    _parquet(root / "medbullets_op5/data/train-00000-of-00001.parquet", [op5])


def write_supergpqa(root: Path) -> None:
    rows = [
        {
            "uuid": f"sg{i}",
            "question": q,
            "options": ["one", "two", "three", "four", "five"],
            "answer": "two",
            "answer_letter": "B",
            "discipline": discipline,
            "field": "Clinical Medicine",
            "subfield": "",
            "difficulty": "easy",
            "is_calculation": False,
        }
        for i, (q, discipline) in enumerate(
            [("How many kidneys?", "Medicine"), ("How many moons?", "Science")]
        )
    ]
    _parquet(root / "supergpqa/data/train-00000-of-00001.parquet", rows)


# bacteria (grounding): image file, size, [(category, [x, y, width, height])]
BACTERIA_IMAGES = [
    ("b1.png", (200, 200), [("rod", [25, 25, 75, 50]), ("coccus", [125, 100, 50, 50])]),
    ("b2.png", (256, 256), [("rod", [100, 10, 50, 50]), ("rod", [10, 60, 30, 30])]),
]


def write_bacteria(root: Path) -> None:
    folder = root / "bacteria"
    cats = {"rod": 1, "coccus": 2}
    images, anns = [], []
    for i, (name, (w, h), boxes) in enumerate(BACTERIA_IMAGES, start=1):
        img = Image.new("RGB", (w, h), (30, 30, 30))
        d = ImageDraw.Draw(img)
        for label, (x, y, bw, bh) in boxes:
            shape = d.ellipse if label == "coccus" else d.rectangle
            shape([x, y, x + bw - 1, y + bh - 1], fill=(200, 200, 120))
        _save(img, folder / "images" / name)
        images.append({"id": i, "file_name": f"images/{name}", "width": w, "height": h})
        for label, bbox in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cats[label],
                         "bbox": bbox, "iscrowd": 0})  # fmt: skip
    categories = [{"id": v, "name": k} for k, v in cats.items()]
    data = {"images": images, "categories": categories, "annotations": anns}
    (folder / "annotations.json").write_text(json.dumps(data))


WRITERS = {
    "mmmu_med": write_mmmu,
    "vqa_rad": write_vqa_rad,
    "slake": write_slake,
    "path_vqa": write_path_vqa,
    "pmc_vqa": write_pmc_vqa,
    "omnimedvqa": write_omnimedvqa,
    "medxpertqa_mm": write_medxpertqa,
    "medxpertqa_text": lambda root: None,  # written with medxpertqa_mm
    "mmlu_med": write_mmlu,
    "pubmedqa": write_pubmedqa,
    "medmcqa": write_medmcqa,
    "medqa": write_medqa,
    "medbullets_op4": write_medbullets,
    "medbullets_op5": lambda root: None,  # written with op4
    "supergpqa": write_supergpqa,
    "bacteria": write_bacteria,
}

#: items per fixture benchmark (SuperGPQA keeps the Medicine row only)
SIZES = {
    "mmmu_med": 10,
    "vqa_rad": 4,
    "slake": 4,
    "path_vqa": 2,
    "pmc_vqa": 2,
    "omnimedvqa": 2,
    "medxpertqa_mm": 2,
    "medxpertqa_text": 2,
    "mmlu_med": 9,
    "pubmedqa": 3,
    "medmcqa": 2,
    "medqa": 1,
    "medbullets_op4": 1,
    "medbullets_op5": 1,
    "supergpqa": 1,
    "bacteria": 3,  # (image, label) pairs: b1 rod, b1 coccus, b2 rod
}


def write_fixtures(root: str | Path, benchmarks: list[str] | None = None) -> Path:
    """Write fixture copies of ``benchmarks`` (all by default) under ``root``."""
    root = Path(root)
    names = benchmarks or list(WRITERS)
    pairs = {"medxpertqa_text": "medxpertqa_mm", "medbullets_op5": "medbullets_op4"}
    for name in dict.fromkeys(pairs.get(n, n) for n in names):
        WRITERS[name](root)
    return root
