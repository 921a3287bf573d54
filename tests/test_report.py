"""The HTML report, checked in a real headless Chromium: it loads from disk without console errors, every
plot and the video are there, and a screenshot is kept in test-artifacts/ for a person to look at."""

import os
import shutil
from pathlib import Path

import pytest

from robosmith.agent.loop import LoopSettings, RewardLoop
from robosmith.report import svg_plot, write_report
from robosmith.task import load_task

pytestmark = pytest.mark.slow  # whole reward-design loops

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def test_svg_plot_draws_every_series_and_handles_no_data():
    svg = svg_plot({"a": [(0, 0.0), (1, 1.0)], "b": [(0, 1.0), (1, 0.5)]}, "t", "x")
    assert svg.count("<polyline") == 2 and ">a<" in svg and ">b<" in svg
    assert "no data yet" in svg_plot({}, "empty", "x")


def test_report_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs the Debian package chromium")
        pytest.skip("Chromium is not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    run = tmp_path / "run"
    settings = LoopSettings(candidates=2, max_iterations=1, train_minutes=0.05, num_envs=16, parallel=2,
                            eval_episodes=4, video_episodes=1, baseline=False)
    RewardLoop.create(run, load_task("so101_reach"), settings, llm=None).run()
    report = write_report(run)

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        plots = page.locator("svg.plot").count()
        lines = page.locator("svg.plot polyline").count()
        duration = page.evaluate(
            """() => new Promise(done => { const v = document.querySelector('video');
                 if (!v) return done(-1);
                 if (v.readyState >= 1) return done(v.duration);
                 v.addEventListener('loadedmetadata', () => done(v.duration));
                 v.addEventListener('error', () => done(-2)); setTimeout(() => done(-3), 10000); })"""
        )
        timeline_rows = page.locator("table tr").count()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()

    assert errors == []
    assert plots >= 2 + 2 * 2  # the best candidate's two plots, then two per candidate
    assert lines >= plots
    assert duration > 0, f"video did not load (code {duration})"
    assert timeline_rows == 1 + 2
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
