"""``greenprune report --html``: one self-contained HTML file per experiment.

The file holds the figures as inline SVG (drawn by the app's chart code, see
:mod:`greenprune.client.figures`), every table of ``greenprune report`` (the same rich tables
the terminal prints, so the same cells, verdict words, margins and family sizes), the energy
method of every figure, and where it all came from: the experiment file, the library versions
the runs recorded, the ResultsService. It loads nothing from anywhere: no script, no font, no
stylesheet outside the file, so it reads the same offline, attached to a paper or a pull
request.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table
from rich.text import Text

from greenprune.client.figures import Figure
from greenprune.core import verdicts

_VERDICT = re.compile(
    "^("
    + "|".join(
        re.escape(w)
        for w in (verdicts.LOWER, verdicts.HIGHER, verdicts.EQUIVALENT, verdicts.INCONCLUSIVE)
    )
    + r")\b"
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
  max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f4f4f4; text-align: left; }
td.right { text-align: right; white-space: nowrap; }
.caption, figcaption { color: #555; font-size: 0.85rem; white-space: pre-line;
  max-width: 70rem; }
.verdict { font-weight: 600; }
.v-lower { color: #1f5fa8; } .v-higher { color: #b03a2e; } .v-equivalent { color: #2e7d32; }
.v-inconclusive { color: #8a6d00; }
figure { margin: 1rem 0 2rem 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
.method { font-style: italic; }
"""


@dataclass(frozen=True)
class Provenance:
    """Where a report's figures came from.

    Attributes:
        experiment: The experiment's name.
        results: The ResultsService address read.
        versions: Each library's versions recorded by the experiment's runs.
        experiment_file: The experiment file, when one was given.
        experiment_text: Its text.
        greenprune_version: The version of greenprune that wrote the report.
    """

    experiment: str
    results: str
    versions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    experiment_file: Path | None = None
    experiment_text: str = ""
    greenprune_version: str = ""


def _cell_text(cell: object) -> str:
    """A table cell as the terminal shows it: rich markup resolved to its plain text."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def table_cells(table: Table) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a rich table, as the plain text of each cell."""
    headers = [_cell_text(column.header) for column in table.columns]
    columns = [[_cell_text(cell) for cell in column.cells] for column in table.columns]
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return headers, rows


def _cell_html(text: str) -> str:
    match = _VERDICT.match(text)
    if match is None:
        return html.escape(text)
    word = match.group(1)
    return f'<span class="verdict v-{word}">{html.escape(word)}</span>' + html.escape(
        text[len(word) :]
    )


def table_html(table: Table) -> str:
    """A rich table as an HTML ``<table>`` with its title and caption."""
    headers, rows = table_cells(table)
    right = [column.justify == "right" for column in table.columns]
    parts = []
    if table.title:
        parts.append(f"<h2>{html.escape(_cell_text(table.title))}</h2>")
    parts.append("<table>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers))
    parts.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(
            f'<td class="right">{_cell_html(c)}</td>' if r else f"<td>{_cell_html(c)}</td>"
            for c, r in zip(row, right, strict=True)
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    if table.caption:
        parts.append(f'<p class="caption">{html.escape(_cell_text(table.caption))}</p>')
    return "\n".join(parts)


def _svg_body(svg: str) -> str:
    """An SVG document without its XML declaration, to inline in HTML."""
    return re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)


def figure_html(figure: Figure) -> str:
    """A figure as an HTML ``<figure>``: the chart as inline SVG, its caption and energy method."""
    return (
        f'<figure id="figure-{html.escape(figure.name)}" data-figure="{html.escape(figure.name)}">'
        f"<h2>{html.escape(figure.title)}</h2>\n{_svg_body(figure.svg())}\n"
        f"<figcaption>{html.escape(figure.caption)}\n"
        f'<span class="method">{html.escape(figure.energy_method)}</span></figcaption></figure>'
    )


def provenance_html(provenance: Provenance) -> str:
    """Where the report came from: the experiment file, the versions, the service."""
    parts = ["<h2>Where these figures come from</h2>", "<ul>"]
    parts.append(
        f"<li>Experiment <code>{html.escape(provenance.experiment)}</code>, read from the "
        f"ResultsService at <code>{html.escape(provenance.results)}</code>.</li>"
    )
    if provenance.experiment_file is not None:
        digest = hashlib.sha256(provenance.experiment_text.encode()).hexdigest()
        parts.append(
            f"<li>Experiment file <code>{html.escape(str(provenance.experiment_file))}</code> "
            f"(sha256 <code>{digest}</code>), below.</li>"
        )
    else:
        parts.append(
            "<li>Experiment file: not given (<code>greenprune report --file FILE</code> "
            "includes it).</li>"
        )
    parts.append(
        f"<li>Written by greenprune {html.escape(provenance.greenprune_version)} on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</li></ul>"
    )
    if provenance.versions:
        parts.append("<table><thead><tr><th>library</th><th>versions the runs recorded</th>")
        parts.append("</tr></thead><tbody>")
        for name, found in sorted(provenance.versions.items()):
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(', '.join(found))}</td></tr>"
            )
        parts.append("</tbody></table>")
    if provenance.experiment_file is not None:
        parts.append(f"<pre>{html.escape(provenance.experiment_text)}</pre>")
    return "\n".join(parts)


def render_html(
    tables: Sequence[Table], figures: Mapping[str, Figure], provenance: Provenance
) -> str:
    """The report as one self-contained HTML document.

    Args:
        tables: The tables of ``greenprune report`` (``report.report_tables``).
        figures: The experiment's figures (:func:`greenprune.client.figures.build_figures`).
        provenance: Where they came from.
    """
    title = f"greenprune report: {provenance.experiment}"
    body = [f"<h1>{html.escape(title)}</h1>"]
    if not figures:
        body.append("<p>No configuration has both an accuracy and an energy measurement yet.</p>")
    body += [figure_html(figure) for figure in figures.values()]
    body += [f'<section class="verdict-table">{table_html(t)}</section>' for t in tables]
    body.append(provenance_html(provenance))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
