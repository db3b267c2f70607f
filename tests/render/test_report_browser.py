"""The HTML report in a real browser: Debian's headless Chromium (installed by `make setup`), driven through
/usr/bin/chromedriver by selenium. At 1280 px wide the page renders without console errors, its body never scrolls
sideways, and every plot is loaded and visible; a screenshot is written to reports/report-1280.png. The acceptance
page (`rackform accept --html`) is held to the same."""

from __future__ import annotations

import shutil

import pytest

from rackform.acceptance.records import judge_group
from rackform.reference.baselines import load_baselines
from rackform.render.acceptance import render_acceptance_html
from tests.acceptance.builders import cert, four_nodes, plan
from tests.conftest import ROOT
from tests.render.conftest import DEMO, cli

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH = 1280
SCREENSHOT = ROOT / "reports" / "report-1280.png"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # make setup installs both (scripts/system-packages.sh); without them this test fails, saying so, never skips.
    assert shutil.which("chromium") and shutil.which("chromedriver"), (
        "Debian's chromium and chromium-driver are needed: run `make setup` as root, or apt-get install chromium "
        "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_report_renders_at_1280_px_with_visible_plots_and_no_errors(s3, capsys, tmp_path, browser):
    page = tmp_path / "report.html"
    code, _, _ = cli(capsys, "report", "cur", "--baseline", "base", "--spec", str(DEMO), "--html", str(page))
    assert code == 1  # the baseline has a regression; the page is written all the same
    browser.get(page.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert browser.execute_script("return window.innerWidth") == WIDTH
    overflow = browser.execute_script("return [document.documentElement.scrollWidth, document.body.scrollWidth, "
                                      "window.innerWidth]")
    assert max(overflow[:2]) <= overflow[2], f"the page scrolls sideways: {overflow}"
    plots = browser.execute_script("""
        return Array.from(document.querySelectorAll('img')).map(img => {
            const r = img.getBoundingClientRect(), s = getComputedStyle(img);
            return {alt: img.alt, complete: img.complete, natural: img.naturalWidth, width: r.width,
                    height: r.height, left: r.left, right: r.right, shown: s.display !== 'none'
                    && s.visibility !== 'hidden' && Number(s.opacity) > 0};
        });""")
    assert [p["alt"] for p in plots] == ["Bus bandwidth by message size", "Performance per dollar",
                                         "% of the physical limit"]
    for p in plots:
        assert p["complete"] and p["natural"] > 0 and p["shown"], p
        assert p["width"] > 200 and p["height"] > 100 and p["left"] >= 0 and p["right"] <= WIDTH, p
    # The per-dollar bars' labels (matplotlib's "small", 8.3 pt: 11.6 px at the PNG's 100 dpi) stay at 10 px or more:
    # the multi-panel plot has a row of its own, not half of one.
    per_dollar = plots[1]
    assert per_dollar["width"] / per_dollar["natural"] * 8.33 / 72 * 100 >= 10, per_dollar
    # The header says what was measured where, with which data; plots come before the table.
    header = browser.execute_script("return document.querySelector('header').innerText")
    for fact in ("demo", "us-east-1", "use1-az6", "cur, base", "catalog", "prices", "rackform"):
        assert fact in header
    assert browser.execute_script(
        "return document.querySelector('.plots').getBoundingClientRect().top"
        " < document.querySelector('table').getBoundingClientRect().top")
    # The rehearsal caveat is said once for the page, not on every row.
    assert browser.execute_script("return document.body.innerText.split('LOCAL REHEARSAL').length - 1") == 1
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, height + 200)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.get_screenshot_as_file(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000


def test_acceptance_page_renders_at_1280_px_with_the_plot_and_the_outlier(tmp_path, browser):
    page = tmp_path / "accept.html"
    page.write_text(render_acceptance_html(cert([judge_group(plan(), four_nodes(slow=2), load_baselines())])))
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
