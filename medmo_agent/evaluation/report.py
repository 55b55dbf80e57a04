"""The evaluation's HTML report: one self-contained file next to the run's other outputs.

``write_report(out_dir)`` reads ``OUT/run.json`` and every ``OUT/<BENCH>/<MODE>/``
(:mod:`.rundir`) and writes ``OUT/report.html``: the published table side by side with
the measured one (differences outside the run's 95% interval highlighted), the modes
compared item by item with bootstrap intervals, per-type breakdowns, the failed items,
which MedEvalKit bugs the scoring fixes, and the run's provenance. Plots are PNG
``data:`` URIs and styles are inline; there is no script and nothing is fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medmo_agent.evaluation.compat import Deviation
from medmo_agent.evaluation.published import PublishedTable, tables_for
from medmo_agent.evaluation.rundir import ModeRun, RunDir, failure_reason, read_run
from medmo_agent.privacy import include_paths_or_env, scrub_absolute_paths
from medmo_agent.rendering import escape, report_css

from . import report_plots, report_tables
from .report_tables import ComparisonRow, Measured

__all__ = ["REPORT_FILE", "render_report", "write_report"]

REPORT_FILE = "report.html"

# An absolute path inside an error message (a local data set's file name can name a patient)

_e = escape

_CSS = (
    report_css(1150)
    + """
td.num{text-align:right;font-variant-numeric:tabular-nums}
.diff-out{background:#fbdcdc;color:#8a1c1c;font-weight:600}.diff-in{background:#e3f3e6}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.warn{background:#fff1c9;color:#6b4e00}
section{background:#fff;border:1px solid #d8dce3;border-radius:8px;margin:18px 0;
padding:12px 18px}
img.plot{max-width:100%;border:1px solid #ccd;display:block;margin:8px 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f7;padding:8px;border-radius:4px;
font-size:12px;max-height:240px;overflow:auto}
"""
)


def write_report(out_dir: str | Path, *, include_paths: bool | None = None) -> Path:
    """Write ``OUT/report.html`` for an evaluation's output folder.

    Args:
        out_dir: the ``--out`` folder of a ``medmo eval`` run (finished or partial).
        include_paths: show file paths named in error messages; by default they are
            replaced by labels (``Settings.include_paths``, ``MEDMO_INCLUDE_PATHS``).

    Returns:
        The report's path.

    Raises:
        InputError: the folder holds no benchmark results, or a file is unreadable.
    """
    from medmo_agent.review.store import atomic_write

    include_paths = include_paths_or_env(include_paths)
    run = read_run(out_dir)
    path = run.root / REPORT_FILE
    atomic_write(path, render_report(run, include_paths=include_paths))
    return path


def render_report(run: RunDir, *, include_paths: bool = False) -> str:
    """The whole report as one HTML string (see :func:`write_report`)."""
    info = run.run
    tables = tables_for(info.get("model"))
    rows = report_tables.comparison_rows(run, tables)
    compat = info.get("compat") or "correct"
    modes = run.mode_names()
    failed = sum(len(m.failed) for ms in run.modes.values() for m in ms.values())
    items = sum(len(m.items) for ms in run.modes.values() for m in ms.values())
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>MedMO benchmark evaluation</title><style>",
        _CSS,
        "</style></head><body>",
        "<header><h1>MedMO benchmark evaluation</h1>",
        f"<div>{_e(info.get('model') or 'unknown model')} · {len(run.modes)} benchmark(s) · "
        f"mode(s) {_e(', '.join(modes))} · scoring {_e(_compat_words(compat))}</div>",
        f"<div class='muted'>{items} item answer(s), {failed} failed · "
        f"finished {_e(info.get('finished_at') or info.get('finished') or 'not recorded')}"
        "</div></header><main>",
        _comparison_section(run, rows, tables),
        _modes_section(run),
        _benchmarks_section(run),
        _failed_section(run, include_paths),
        _scoring_section(run, compat),
        _provenance_section(info),
        "</main></body></html>\n",
    ]
    return "".join(parts)


def _compat_words(compat: str) -> str:
    if compat == "medevalkit":
        return "--compat medevalkit (MedEvalKit's bugs reproduced)"
    return "correct (MedEvalKit's bugs fixed)"


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}"


def _measured_cells(m: Measured | None) -> str:
    if m is None or m.value is None:
        return "<td class='muted'>not run</td><td></td><td></td>"
    ci = "" if m.ci is None else f"{m.ci[0] * 100:.1f} – {m.ci[1] * 100:.1f}"
    return f"<td class='num'>{m.n}</td><td class='num'>{_pct(m.value)}</td><td>{ci}</td>"


def _comparison_section(
    run: RunDir, rows: list[ComparisonRow], tables: list[PublishedTable]
) -> str:
    if not run.modes:
        skipped = run.run.get("skipped_modes") or []
        why = (
            " Skipped (benchmark, mode): "
            + ", ".join(" ".join(str(x) for x in pair) for pair in skipped)
            + "."
            if skipped
            else ""
        )
        return (
            "<section id='comparison'><h2>Published and measured</h2><p>No benchmark results "
            f"in this run.{_e(why)}</p></section>"
        )
    mode = report_tables.reference_mode(run)
    head = "<tr><th>group</th><th>figure</th><th>n</th>" + f"<th>measured ({_e(mode)})</th>"
    head += "<th>95% interval</th>"
    for i, t in enumerate(tables):
        head += f"<th>published [{i + 1}]<br><span class='muted'>{_e(t.model)}</span></th>"
        head += f"<th>Δ [{i + 1}]</th>"
    body = []
    for row in rows:
        cells = [
            f"<td>{_e(row.figure.group)}</td><td>{_e(row.figure.title)}</td>",
            _measured_cells(row.measured),
        ]
        for i in range(len(tables)):
            pub = row.published[i]
            if pub is None:
                cells.append("<td class='muted'>not published</td><td></td>")
                continue
            delta = row.delta(i)
            flag = row.outside[i]
            cls = "" if flag is None else (" diff-out" if flag else " diff-in")
            text = "—" if delta is None else f"{delta:+.1f}"
            cells.append(f"<td class='num'>{pub:.1f}</td><td class='num{cls}'>{text}</td>")
        attrs = f"data-benchmark='{_e(row.figure.benchmark)}' data-metric='{_e(row.figure.metric)}'"
        body.append(f"<tr {attrs}>{''.join(cells)}</tr>")
    sources = "".join(
        f"<li>[{i + 1}] <b>{_e(t.model)}</b>: {_e(t.source)}, <a href='{_e(t.url)}'>"
        f"{_e(t.url)}</a>. {_e(t.note)}</li>"
        for i, t in enumerate(tables)
    )
    plot = report_plots.comparison_plot(rows, tables)
    return (
        "<section id='comparison'><h2>Published and measured</h2>"
        "<p class='muted'>Percentages. Δ is measured minus published, in points; red when the "
        "published figure lies outside the measured 95% Wilson interval (more than this run's "
        "sampling noise), green when inside. Measured figures are the "
        f"<b>{_e(mode)}</b> mode's.</p>"
        f"<table id='comparison-table'>{head}</tr>{''.join(body)}</table>"
        f"<ul>{sources}</ul>{_plot(plot, 'measured and published figures')}</section>"
    )


def _plot(uri: str | None, alt: str) -> str:
    return "" if uri is None else f"<img class='plot' alt='{_e(alt)}' src='{uri}'>"


def _accuracy(mode_run: ModeRun) -> float | None:
    m = report_tables.measure(mode_run.metrics, "acc")
    if m is not None:
        return m.value
    scored = [i for i in mode_run.items if i.get("correct") is not None and not i.get("error")]
    return sum(bool(i["correct"]) for i in scored) / len(scored) if scored else None


def _modes_section(run: RunDir) -> str:
    modes = run.mode_names()
    accuracy = {b: {m: _accuracy(r) for m, r in ms.items()} for b, ms in run.modes.items()}
    head = "".join(f"<th>{_e(m)}</th>" for m in modes)
    body = "".join(
        f"<tr><td>{_e(b)}</td>"
        + "".join(f"<td class='num'>{_pct(accuracy[b].get(m))}</td>" for m in modes)
        + "</tr>"
        for b in run.modes
    )
    out = [
        "<section id='modes'><h2>Modes</h2>",
        f"<table id='modes-table'><tr><th>benchmark</th>{head}</tr>{body}</table>",
    ]
    paired = report_tables.paired_rows(run)
    if paired:
        out.append(
            "<h3>Paired differences</h3><p class='muted'>The same items in two modes: B's "
            "accuracy minus A's, in points, with a percentile bootstrap interval over items. "
            "An interval that excludes 0 is a difference beyond resampling noise.</p>"
            "<table id='paired'><tr><th>benchmark</th><th>A vs B</th><th>n</th><th>A</th>"
            "<th>B</th><th>B − A</th><th>interval</th><th>only A right</th>"
            "<th>only B right</th></tr>"
        )
        for bench, label, d in paired:
            lo, hi = d["ci_low"] * 100, d["ci_high"] * 100
            cls = "diff-out" if lo > 0 or hi < 0 else ""
            level = f"{d.get('confidence', 0.95) * 100:.0f}%"
            out.append(
                f"<tr><td>{_e(bench)}</td><td>{_e(label)}</td><td class='num'>{d['n']}</td>"
                f"<td class='num'>{_pct(d['accuracy_a'])}</td>"
                f"<td class='num'>{_pct(d['accuracy_b'])}</td>"
                f"<td class='num {cls}'>{d['difference'] * 100:+.1f}</td>"
                f"<td>{lo:+.1f} – {hi:+.1f} ({level})</td><td class='num'>{d['only_a']}</td>"
                f"<td class='num'>{d['only_b']}</td></tr>"
            )
        out.append("</table>")
        out.append(_plot(report_plots.paired_plot(paired), "paired differences"))
    elif len(modes) < 2:
        out.append(
            "<p class='muted'>One mode ran. Run two (for example --mode direct --mode "
            "agent) on the same items to see whether multi-step answering helps.</p>"
        )
    out.append(_plot(report_plots.modes_plot(accuracy), "accuracy per mode"))
    out.append("</section>")
    return "".join(out)


def _metrics_line(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "<p class='muted'>metrics.json not written yet.</p>"
    cells = []
    for block in ("total metrics", "close", "open"):
        m = metrics.get(block)
        if isinstance(m, dict) and m.get("total"):
            cells.append(f"{_e(block)}: {m.get('right')}/{m.get('total')} = {_pct(m.get('acc'))}%")
    for extra in ("mean_iou", "acc@0.5"):
        value = (metrics.get("total metrics") or {}).get(extra)
        if isinstance(value, float):
            cells.append(f"{extra}: {value:.3f}")
    open_block = metrics.get("open")
    if isinstance(open_block, dict) and open_block.get("total"):
        named = ("bleu1", "rougel", "f1")
        cells.append(
            "open "
            + ", ".join(
                f"{k} {open_block[k]:.3f}"
                for k in named
                if isinstance(open_block.get(k), int | float)
            )
        )
    return (
        f"<p>{' · '.join(cells)}</p>"
        + _per_label(metrics)
        + (
            f"<details><summary>metrics.json</summary><pre>{_e(json.dumps(metrics, indent=1))}"
            "</pre></details>"
        )
    )


def _per_label(metrics: dict[str, Any]) -> str:
    labels = metrics.get("per label")
    if not isinstance(labels, dict) or not labels:
        return ""
    rows, at = [], "IoU threshold"
    for label, m in labels.items():
        key = next((k for k in m if k.startswith("acc@")), "")
        hit, at = m.get(key), f"IoU {key[4:]}" if key else at
        rows.append(
            f"<tr><td>{_e(label)}</td><td class='num'>{_e(m.get('items'))}</td>"
            f"<td class='num'>{_e(m.get('true_boxes'))}</td>"
            f"<td class='num'>{_e(m.get('unmatched_predictions'))}</td>"
            f"<td class='num'>{_pct(m.get('mean_iou'))}</td><td class='num'>{_pct(hit)}</td></tr>"
        )
    return (
        "<table class='per-label'><tr><th>label</th><th>items</th><th>true boxes</th>"
        f"<th>unmatched predictions</th><th>mean IoU (%)</th><th>found at {_e(at)} (%)</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _benchmarks_section(run: RunDir) -> str:
    out = ["<section id='benchmarks'><h2>Per benchmark</h2>"]
    order = run.mode_names()
    for bench, modes in run.modes.items():
        for mode in (m for m in order if m in modes):
            mode_run = modes[mode]
            out.append(
                f"<div class='benchmark' data-benchmark='{_e(bench)}' data-mode='{_e(mode)}'>"
                f"<h3>{_e(bench)} <span class='muted'>({_e(mode)}, {len(mode_run.items)} "
                "items)</span></h3>"
            )
            out.append(_metrics_line(mode_run.metrics))
            for title, groups in report_tables.breakdowns(mode_run).items():
                rows = "".join(
                    f"<tr><td>{_e(g.key)}</td><td class='num'>{g.items}</td>"
                    f"<td class='num'>{g.answered}</td><td class='num'>{g.right}</td>"
                    f"<td class='num'>{_pct(g.accuracy)}</td></tr>"
                    for g in groups
                )
                out.append(
                    f"<table class='breakdown' data-by='{_e(title)}'><tr><th>{_e(title)}</th>"
                    f"<th>items</th><th>answered</th><th>right</th><th>accuracy</th></tr>"
                    f"{rows}</table>"
                )
            out.append("</div>")
    out.append("</section>")
    return "".join(out)


def _reason(item: dict[str, Any], include_paths: bool) -> str:
    text = failure_reason(item)
    return scrub_absolute_paths(text, include_paths)


def _failed_section(run: RunDir, include_paths: bool) -> str:
    rows = [
        f"<tr><td>{_e(b)}</td><td>{_e(m)}</td><td>{_e(i.get('item_id'))}</td>"
        f"<td>{_e(_reason(i, include_paths))}</td></tr>"
        for b, ms in run.modes.items()
        for m, r in ms.items()
        for i in r.failed
    ]
    if not rows:
        return "<section id='failed'><h2>Failed items</h2><p>None.</p></section>"
    return (
        f"<section id='failed'><h2>Failed items ({len(rows)})</h2><p class='muted'>Recorded "
        "and skipped; re-running the same command tries them again. They count in no "
        "accuracy above.</p><table id='failed-table'><tr><th>benchmark</th><th>mode</th>"
        f"<th>item</th><th>reason</th></tr>{''.join(rows)}</table></section>"
    )


_BUG_TITLES = {
    Deviation.OPEN_ACC_DIVIDED_TWICE: "open accuracy divided twice",
    Deviation.F1_LABELS_PERMUTED: "token F1 labels permuted",
    Deviation.PATHVQA_JUDGE_CLOSED_ZERO: "PathVQA judge mode drops closed items",
    Deviation.SLAKE_JUDGE_CLOSED_TWICE: "SLAKE judge mode counts closed items twice",
    Deviation.MMMU_OPEN_CHARACTERS: "MMMU open answers read character by character",
}


def _scoring_section(run: RunDir, compat: str) -> str:
    reproduced = compat == "medevalkit"
    state = "reproduced" if reproduced else "fixed"
    rows = "".join(
        f"<tr data-bug='{_e(d.name)}'><td>{_e(_BUG_TITLES[d])}</td><td>{_e(d.value)}</td>"
        f"<td>{'yes' if exposed else 'no'}</td><td><span class='badge "
        f"{'warn' if reproduced else 'ok'}'>{state}</span></td></tr>"
        for d, exposed in report_tables.bug_rows(run)
    )
    judges = report_tables.judge_models(run)
    judge_line = (
        f"Open answers were also judged by an LLM ({_e(', '.join(judges))}), "
        "with MedEvalKit's prompt; each item keeps the prompt and the verdict."
        if judges
        else "Open answers were scored by rule only (exact match, token F1, BLEU, ROUGE)."
    )
    return (
        "<section id='scoring'><h2>Scoring</h2>"
        f"<p>Scoring mode: <b>{_e(_compat_words(compat))}</b>. Prompts, answer extraction and "
        f"judging rules follow MedEvalKit. {judge_line}</p>"
        "<table id='bugs'><tr><th>MedEvalKit bug</th><th>what it does</th>"
        "<th>touches this run</th><th>in this report</th></tr>"
        f"{rows}</table></section>"
    )


_PROVENANCE = (
    ("model", "model"),
    ("revision", "revision"),
    ("backend", "backend"),
    ("modes", "modes"),
    ("compat", "scoring"),
    ("seed", "seed"),
    ("limit", "limit per benchmark"),
    ("max_new_tokens", "max new tokens"),
    ("temperature", "temperature"),
    ("judge_model", "judge model"),
    ("python", "python"),
    ("started_at", "started"),
    ("finished_at", "finished"),
    ("interrupted", "interrupted"),
)


def _value(v: Any) -> str:
    if isinstance(v, dict | list):
        return _e(json.dumps(v, default=str))
    return _e(v)


def _provenance_section(info: dict[str, Any]) -> str:
    shown = {k for k, _ in _PROVENANCE} | {"versions", "benchmarks", "package_versions"}
    rows = [
        f"<tr><th>{_e(title)}</th><td>{_value(info[k])}</td></tr>"
        for k, title in _PROVENANCE
        if info.get(k) not in (None, "", [])
    ]
    versions = info.get("versions") or info.get("package_versions") or {}
    if isinstance(versions, dict) and versions:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
        rows.append(f"<tr><th>package versions</th><td>{_e(listed)}</td></tr>")
    rows += [
        f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>"
        for k, v in info.items()
        if k not in shown and isinstance(v, str | int | float | bool)
    ]
    out = ["<section id='provenance'><h2>Provenance</h2>"]
    if not info:
        out.append("<p class='muted'>run.json is missing: the run's settings are unknown.</p>")
    out.append(f"<table id='provenance-table'>{''.join(rows)}</table>")
    benches = info.get("benchmarks")
    if isinstance(benches, dict) and benches:
        out.append(
            "<h3>Benchmarks</h3><table><tr><th>benchmark</th><th>source</th><th>split</th>"
            "<th>items</th></tr>"
        )
        for bench, b in benches.items():
            b = b if isinstance(b, dict) else {}
            source = b.get("hub_id") or b.get("source") or ""
            configs = ", ".join(str(c) for c in b.get("configs") or [])
            if configs:
                source = f"{source} ({configs})"
            out.append(
                f"<tr><td>{_e(bench)}</td><td>{_e(source)}"
                f"</td><td>{_e(b.get('split'))}</td><td class='num'>{_e(b.get('items'))}</td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "".join(out)
