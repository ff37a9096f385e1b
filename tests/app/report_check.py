"""Opens an HTML report in Chromium with the network cut, and reads back what it shows.

Shared by the report's own test (tests/app/test_report_html.py) and the demo's
(tests/e2e/test_demo.py): the page is loaded from a ``file://`` URL in an offline context whose
every other request is recorded and refused, the trade-off chart is photographed, and every
table is read back as the browser lays it out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

TABLES_JS = """() => Array.from(document.querySelectorAll('section.verdict-table')).map((s) => ({
    title: s.querySelector('h2') ? s.querySelector('h2').innerText : '',
    headers: Array.from(s.querySelectorAll('thead th')).map((c) => c.textContent),
    rows: Array.from(s.querySelectorAll('tbody tr')).map(
        (r) => Array.from(r.querySelectorAll('td')).map((c) => c.textContent)),
    caption: s.querySelector('.caption') ? s.querySelector('.caption').textContent : '',
}))"""


@dataclass(frozen=True)
class Shown:
    """What the browser showed.

    Attributes:
        requests: Every URL the page asked for besides its own file (refused).
        errors: Console errors and page errors.
        tables: Each verdict table: title, headers, rows (cell texts) and caption.
        figures: The names of the figures drawn.
        chart_marks: The SVG shapes inside the trade-off chart.
        chart_ink: The share of the trade-off chart's photographed pixels that are not white.
        chart_colours: The distinct colours in that photograph.
    """

    requests: list[str]
    errors: list[str]
    tables: list[dict[str, Any]]
    figures: list[str]
    chart_marks: int
    chart_ink: float
    chart_colours: int


def open_offline(browser: Any, report: Path, screenshot: Path) -> Shown:
    """Loads ``report`` offline, photographs its trade-off chart into ``screenshot``.

    Args:
        browser: A Playwright Chromium browser.
        report: The HTML file.
        screenshot: Where the chart's PNG goes.
    """
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1200})
    url = report.resolve().as_uri()
    requests: list[str] = []
    errors: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url != url:
            requests.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    try:
        page.goto(url, wait_until="load")
        tables = page.evaluate(TABLES_JS)
        figures = page.eval_on_selector_all(
            "figure[data-figure]", "(fs) => fs.map((f) => f.dataset.figure)"
        )
        chart = page.locator("#figure-tradeoff svg").first
        marks = chart.evaluate(
            "(svg) => svg.querySelectorAll('path, circle, rect, line, symbol').length"
        )
        png = chart.screenshot(path=str(screenshot))
    finally:
        context.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = list(image.getdata())
    ink = sum(1 for p in pixels if min(p) < 235) / max(len(pixels), 1)
    return Shown(requests, errors, tables, figures, marks, ink, len(set(pixels)))
