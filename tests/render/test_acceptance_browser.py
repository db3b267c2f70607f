"""The acceptance page (`rackform accept --html`) in headless Chromium, as the report is tested: at 1280 px it renders
without console errors, never scrolls sideways, every group's per-node plot is loaded and visible, and the outlier's
line is on the page."""

from __future__ import annotations

from rackform.acceptance.records import judge_group
from rackform.reference.baselines import load_baselines
from rackform.render.acceptance import render_acceptance_html
from tests.acceptance.test_records import _cert, four_nodes, plan
from tests.render.test_report_browser import WIDTH, browser  # noqa: F401  (the fixture)


def test_acceptance_page_renders_at_1280_px_with_the_plot_and_the_outlier(tmp_path, browser):  # noqa: F811
    page = tmp_path / "accept.html"
    page.write_text(render_acceptance_html(_cert([judge_group(plan(), four_nodes(slow=2), load_baselines())])))
    browser.get(page.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    widths = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == WIDTH, f"the page scrolls sideways: {widths}"
    plots = browser.execute_script("""
        return Array.from(document.querySelectorAll('img')).map(img => {
            const r = img.getBoundingClientRect();
            return {alt: img.alt, complete: img.complete, natural: img.naturalWidth, width: r.width,
                    height: r.height, right: r.right};
        });""")
    assert [p["alt"] for p in plots] == ["per-node figures of graviton/cpu"]
    assert plots[0]["complete"] and plots[0]["natural"] > 0 and plots[0]["width"] > 200 and plots[0]["height"] > 100
    assert plots[0]["right"] <= WIDTH
    text = browser.execute_script("return document.body.innerText")
    assert "Acceptance: not accepted" in text and "outlier graviton/cpu node 2: cpu 600 events/s" in text
