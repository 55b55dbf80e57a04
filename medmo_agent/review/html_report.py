"""The review's HTML report: one self-contained file, browsable offline.

Images with their boxes are embedded as PNG ``data:`` URIs; styles are inline; there is
no script and nothing is fetched, so the file can be mailed, archived or opened from a
USB stick. Traces fold away with ``<details>``.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from ..rendering import escape, findings_html, report_css
from .markdown import DISCLAIMER, describe_image, redact, scrub_paths
from .records import CaseRecord
from .store import ReviewStore

__all__ = ["render_html_report"]

_MAX_SIDE = 768  # px: keeps the report small while boxes stay legible
_MAX_JSON = 20_000  # characters of one step's JSON shown in the trace

_CSS = (
    report_css(1100)
    + """
.case{background:#fff;border:1px solid #d8dce3;border-radius:8px;margin:18px 0;padding:12px 18px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
vertical-align:middle}.skipped{background:#eee;color:#555}
figure{display:inline-block;margin:8px 12px 8px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ccd;display:block}figcaption{font-size:12px;color:#556}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f7;padding:8px;border-radius:4px;
font-size:12px;max-height:360px;overflow:auto}.error{color:#8a1c1c}
.step{border-left:3px solid #c5cde0;padding-left:10px;margin:8px 0}
"""
)


_e = escape


def _br(text: Any) -> str:
    return _e(text).replace("\n", "<br>")


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value * 100:.1f}%" if pct else f"{value:.3f}"
    return _e(value)


def _data_uri(path: Path) -> str | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((_MAX_SIDE, _MAX_SIDE))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html_report(
    records: list[CaseRecord],
    agreement: dict[str, Any],
    store: ReviewStore,
    run_info: dict[str, Any],
    include_paths: bool = False,
) -> str:
    """The whole report as one HTML string."""
    ok = sum(r.status == "ok" for r in records)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>MedMO case review</title><style>",
        _CSS,
        "</style></head><body>",
        "<header><h1>MedMO case review</h1>",
        f"<div>{len(records)} case(s): {ok} reviewed, {len(records) - ok} failed</div>",
        f"<div class='muted'>{_e(DISCLAIMER)}</div></header><main>",
        _run_section(run_info),
        _agreement_section(agreement),
        _summary_table(records, store, include_paths),
    ]
    parts += [_case_section(r, store, include_paths) for r in records]
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _run_section(info: dict[str, Any]) -> str:
    prov = info.get("provenance", {})
    rows = [
        (
            "model",
            prov.get("model", "") + (f" @ {prov['revision']}" if prov.get("revision") else ""),
        ),
        ("backend", prov.get("backend")),
        ("steps", json.dumps(prov.get("steps"))),
        ("parameters", json.dumps(prov.get("parameters", {}))),
        ("medmo-agent", prov.get("package_version")),
        ("prompts sha256", prov.get("prompts_sha256")),
        ("finished", info.get("finished_at")),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2><table>{body}</table>"


def _agreement_section(agr: dict[str, Any]) -> str:
    rows = []
    if "answers" in agr:
        a = agr["answers"]
        rows.append(("answers: accuracy", f"{_fmt(a['accuracy'], True)} ({a['correct']}/{a['n']})"))
    if "labels" in agr:
        lab = agr["labels"]
        rows += [
            (
                "labels: exact-set accuracy",
                f"{_fmt(lab['exact_accuracy'], True)} ({lab['exact']}/{lab['n_cases']} cases)",
            ),
            (
                "labels: precision / recall / F1",
                " / ".join(_fmt(lab[k]) for k in ("precision", "recall", "f1")),
            ),
        ]
    if "boxes" in agr:
        b = agr["boxes"]
        rows += [
            ("boxes: mean IoU", _fmt(b["mean_iou"])),
            (
                "boxes: recall / precision at IoU 0.5",
                f"{_fmt(b['recall_at_0.5'], True)} / {_fmt(b['precision_at_0.5'], True)} "
                f"({b['hits']} of {b['n_expected']} expected, {b['n_predicted']} found)",
            ),
        ]
    if not rows:
        return "<h2>Agreement</h2><p class='muted'>No expected answers, labels or boxes given.</p>"
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2 id='agreement'>Agreement with expected values</h2><table>{body}</table>"


def _anchor(store: ReviewStore, case_id: str) -> str:
    return "case-" + store.folder_name(case_id)


def _summary_table(records: list[CaseRecord], store: ReviewStore, include_paths: bool) -> str:
    rows = []
    for r in records:
        out = r.outputs or {}
        nboxes = sum(len(b) for b in out.get("boxes", []))
        impression = next(
            (x.get("impression") or x.get("findings") for x in out.get("reports", [])), ""
        )
        error = scrub_paths((r.error or {}).get("message"), r, include_paths)
        note = error if r.status != "ok" else impression
        rows.append(
            f"<tr><td><a href='#{_anchor(store, r.id)}'>{_e(r.id)}</a></td>"
            f"<td><span class='badge {r.status}'>{r.status}</span></td><td>{nboxes}</td>"
            f"<td>{_e(', '.join(out.get('labels', [])))}</td><td>{_e(note)[:300]}</td>"
            f"<td>{r.seconds:.1f}</td></tr>"
        )
    return (
        "<h2>Cases</h2><table id='summary'><tr><th>case</th><th>status</th><th>boxes</th>"
        "<th>labels</th><th>impression / error</th><th>s</th></tr>" + "".join(rows) + "</table>"
    )


def _case_section(rec: CaseRecord, store: ReviewStore, include_paths: bool) -> str:
    out = rec.outputs or {}
    h = [
        f"<section class='case' id='{_anchor(store, rec.id)}' data-case-id='{_e(rec.id)}' "
        f"data-status='{rec.status}'><h2>{_e(rec.id)} "
        f"<span class='badge {rec.status}'>{rec.status}</span></h2>"
    ]
    if rec.error:
        message = scrub_paths(rec.error.get("message"), rec, include_paths)
        h.append(f"<p class='error'><b>Failed:</b> {_e(message)}")
        if rec.error.get("fix"):
            h.append(f"<br>Fix: {_e(scrub_paths(rec.error['fix'], rec, include_paths))}")
        h.append("</p>")
    if rec.context:
        h.append(f"<p><b>Clinical context:</b> {_e(rec.context)}</p>")
    for image in rec.images:
        caption = _e(describe_image(image, include_paths))
        uri = _data_uri(store.case_dir(rec.id) / image.overlay) if image.overlay else None
        if uri:
            h.append(
                f"<figure><img alt='{caption}' src='{uri}'><figcaption>{caption}"
                f"</figcaption></figure>"
            )
        else:
            h.append(f"<p class='muted'>{caption}</p>")
    for volume in out.get("volumes", []):
        h.append(_volume(volume, store.case_dir(rec.id)))
    for rep in out.get("reports", []):
        h.append(f"<h3>Report, image {(rep.get('image') or 0) + 1}</h3>")
        if rep.get("findings"):
            h.append(f"<p><b>Findings:</b> {_e(rep['findings'])}</p>")
        if rep.get("impression"):
            h.append(f"<p><b>Impression:</b> {_e(rep['impression'])}</p>")
        if not rep.get("findings") and not rep.get("impression"):
            h.append(f"<p>{_e(rep.get('report'))}</p>")
    boxes = [(i, b) for i, bs in enumerate(out.get("boxes", [])) for b in bs]
    if boxes:
        h.append(
            "<h3>Boxes</h3><table><tr><th>image</th><th>label</th><th>x1, y1, x2, y2</th></tr>"
        )
        h += [
            f"<tr><td>{i + 1}</td><td>{_e(b.get('label'))}</td><td>{b['x1']:.0f}, {b['y1']:.0f}, "
            f"{b['x2']:.0f}, {b['y2']:.0f}</td></tr>"
            for i, b in boxes
        ]
        h.append("</table>")
    h.append(_answers(rec))
    if out.get("classified"):
        labels = ", ".join(out.get("labels", [])) or (
            "No Finding" if out.get("no_finding") else "—"
        )
        h.append(f"<p><b>Labels:</b> {_e(labels)}</p>")
    for c in out.get("conclusions", []):
        h.append(
            f"<h3>Conclusion, image {(c.get('image') or 0) + 1}</h3>"
            f"<p class='muted'>{_e(c.get('question'))}</p><p>{_br(c.get('conclusion'))}</p>"
        )
    if out.get("final_answer") and not out.get("answers") and not out.get("conclusions"):
        h.append(f"<p><b>Conclusion:</b> {_e(out['final_answer'])}</p>")
    h.append(_trace(rec, include_paths))
    h.append("</section>")
    return "".join(h)


def _volume(volume: dict[str, Any], folder: Path) -> str:
    """A volume sweep: 3D findings table under the overview strip (embedded, so the page
    stays one file)."""
    image = (volume.get("image") or 0) + 1
    h = [f"<h3>3D findings, image {image} ({_e(volume.get('step') or 'ground_volume')})</h3>"]
    uri = _data_uri(folder / volume["overview"]) if volume.get("overview") else None
    if uri:
        h.append(
            f"<figure><img class='overview' alt='key slices with boxes' src='{uri}'>"
            "<figcaption>Key slices of the findings, boxes drawn</figcaption></figure>"
        )
    h.append(findings_html(volume))
    return "".join(h)


def _answers(rec: CaseRecord) -> str:
    out = rec.outputs or {}
    answers = out.get("answers", []) + out.get("box_answers", [])
    if not answers:
        return ""
    items = {
        i["question_index"]: i for i in (rec.agreement or {}).get("answers", {}).get("items", [])
    }
    rows = []
    for a in answers:
        item = items.get(a.get("question_index"))
        exp = (
            ""
            if item is None
            else (
                f"{_e(item['expected'])} "
                f"<span class='badge {'ok' if item['correct'] else 'failed'}'>"
                f"{'agrees' if item['correct'] else 'differs'}</span>"
            )
        )
        rows.append(
            f"<tr><td>{_e(a.get('question'))}</td><td>{_e(a.get('answer'))}</td><td>{exp}</td></tr>"
        )
    return (
        "<h3>Questions</h3><table><tr><th>question</th><th>answer</th><th>expected</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _trace(rec: CaseRecord, include_paths: bool) -> str:
    steps = []
    for s in rec.steps:
        payload = {"inputs": s.inputs}
        if s.result is not None:
            payload["result"] = s.result
        if s.error is not None:
            payload["error"] = s.error
        if include_paths:
            text = json.dumps(payload, indent=2, default=str)
        else:
            text = scrub_paths(json.dumps(redact(payload), indent=2, default=str), rec)
        if len(text) > _MAX_JSON:
            text = text[:_MAX_JSON] + "\n… (truncated; the full step is in record.json)"
        where = "" if s.image is None else f", image {s.image + 1}"
        steps.append(
            f"<div class='step'><b>{s.index + 1}. {_e(s.step)}</b> ({_e(s.task)}{where}) "
            f"<span class='badge {s.status}'>{s.status}</span> "
            f"<span class='muted'>{s.seconds:.2f} s</span><pre>{_e(text)}</pre></div>"
        )
    n = len(rec.steps)
    summary = f"Trace ({n} step{'' if n == 1 else 's'})"
    return f"<details><summary>{summary}</summary>{''.join(steps)}</details>"
