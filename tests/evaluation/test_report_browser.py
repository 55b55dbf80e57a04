"""The evaluation report in headless Chromium: offline, every section shown, plots drawn."""

from __future__ import annotations

import pytest
from browsers import ARTIFACTS, chromium_page, require_chromium

from medmo_agent.evaluation.report import write_report

from .run_fixture import make_run


@pytest.mark.browser
def test_the_eval_report_opens_offline_with_tables_and_plots(tmp_path):
    require_chromium()
    report = write_report(make_run(tmp_path / "run"))

    requests: list[str] = []
    with chromium_page() as page:
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        for section in ("comparison", "modes", "benchmarks", "failed", "scoring", "provenance"):
            assert page.locator(f"section#{section}").is_visible()
        rows = page.locator("#comparison-table tr[data-benchmark]")
        assert rows.count() == 5  # VQA-RAD and SLAKE closed and all, PubMedQA
        flagged = page.locator("#comparison-table td.diff-out")
        assert flagged.count() >= 2
        color = flagged.first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert color == "rgb(251, 220, 220)"  # highlighted, not just classed
        assert page.locator("#paired tr").count() == 2  # header + vqa_rad direct vs agent
        failed = page.locator("#failed-table").inner_text()
        assert "<script>alert(1)</script>" in failed  # shown as text, never run
        widths = page.locator("img.plot").evaluate_all(
            "els => els.map(e => e.complete && e.naturalWidth)"
        )
        assert len(widths) == 3 and all(w >= 400 for w in widths)
        page.locator("#benchmarks details summary").first.click()
        assert page.locator("#benchmarks details pre").first.is_visible()
        page.screenshot(path=str(ARTIFACTS / "eval-report.png"), full_page=True)
    # self-contained: the page itself, its data: images, and nothing fetched
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]


@pytest.mark.browser
def test_the_report_of_a_real_two_mode_run_shows_the_paired_difference(tmp_path, bench_data):
    require_chromium()
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.config import Settings
    from medmo_agent.evaluation.runner import run_eval

    def reply(request) -> str:
        text = request.messages[-1].text.lower()
        if "boxed" in text:  # the reason mode: always the right letter
            for key, letter in (("aspirin", "A"), ("test accurate", "B"), ("it help", "C")):
                if key in text:
                    return f"<think>weighing it</think><answer>\\boxed{{{letter}}}</answer>"
        return "A"

    out = tmp_path / "run"
    run_eval(
        ["pubmedqa", "vqa_rad"],
        out,
        modes=["direct", "reason"],
        data_dir=bench_data,
        backend=ScriptedBackend(responder=reply),
        settings=Settings(),
        seed=3,
    )
    report = out / "report.html"
    with chromium_page() as page:
        page.goto(report.as_uri())
        paired = page.locator("#paired").inner_text()
        assert "pubmedqa\tdirect vs reason\t3\t33.3\t100.0\t+66.7" in paired
        pubmed = page.locator("#comparison-table tr[data-benchmark='pubmedqa']").inner_text()
        assert "33.3" in pubmed and "75.6" in pubmed
        assert page.locator("#provenance-table").inner_text().count("seed\t3") == 1
        assert (
            "open bleu1 0.000, rougel 0.000, f1 0.000" in page.locator("#benchmarks").inner_text()
        )  # zeros are figures too
        page.screenshot(path=str(ARTIFACTS / "eval-report-run.png"), full_page=True)
