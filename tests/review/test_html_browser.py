"""The HTML report in headless Chromium: every case shows, offline, images drawn."""

from __future__ import annotations

import pytest
from browsers import ARTIFACTS, chromium_page, require_chromium

from medmo_agent.review import run_review

from .conftest import write_cases, write_png


@pytest.mark.browser
def test_the_html_report_opens_offline_and_shows_every_case(tmp_path, scripted, scripted_settings):
    require_chromium()
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=3)
    cases = write_cases(
        tmp_path / "cases.yaml",
        [
            {
                "id": "two views",
                "images": ["a.png", "b.png"],
                "context": "67M <smoker>",
                "questions": [{"question": "Is there a nodule?", "expected": "yes"}],
                "expected_boxes": [{"label": "nodule", "x1": 40, "y1": 40, "x2": 100, "y2": 100}],
            },
            {"id": "single", "image": "a.png"},
            {"id": "broken", "image": "missing.png"},
        ],
    )
    out = tmp_path / "out"
    run_review(
        cases,
        steps="ground,vqa,report,classify",
        backend=scripted,
        out=out,
        settings=scripted_settings,
    )
    report = out / "report.html"

    requests: list[str] = []
    with chromium_page() as page:
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        sections = page.locator("section.case")
        assert sections.count() == 3
        shown = [sections.nth(i).get_attribute("data-case-id") for i in range(3)]
        assert shown == ["two views", "single", "broken"]
        for i in range(3):
            assert sections.nth(i).is_visible()
        assert page.locator("#summary tr").count() == 4  # header + one row per case
        broken = page.locator("section.case[data-case-id='broken']")
        assert "No such file: [image 1]" in broken.inner_text()
        assert "failed" in broken.inner_text()
        two = page.locator("section.case[data-case-id='two views']")
        assert "67M <smoker>" in two.inner_text()  # escaped, not parsed as a tag
        images = two.locator("img")
        assert images.count() == 2
        widths = images.evaluate_all("els => els.map(e => e.complete && e.naturalWidth)")
        assert widths == [320, 320]
        assert "agrees" in two.inner_text()
        two.locator("details summary").click()
        assert two.locator(".step").first.is_visible()
        assert "mean IoU" in page.locator("#agreement + table").inner_text()
        page.screenshot(path=str(ARTIFACTS / "review-report.png"), full_page=True)
    # self-contained: the page itself, its data: images, and nothing fetched
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
