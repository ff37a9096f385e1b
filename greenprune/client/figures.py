"""The figures of an experiment, drawn by the app's chart code, as Altair charts, SVG or PNG.

Every figure is built from a view of the ResultsService with ``results_app.frames`` (which rows)
and ``results_app.charts`` (how they are drawn), the functions the app's pages call, so a
figure here and the same chart in the app never disagree. Static images come from
``vl-convert`` (Vega-Lite rendered without a browser or a network).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from greenprune.core.energy.readings import describe_method

TRADEOFF = "tradeoff"
ACCURACY_CHANGE = "accuracy_change"
ENERGY_CHANGE = "energy_change"

FIGURE_VIEWS: tuple[str, ...] = ("tradeoff", "task_breakdown", "profile", "runs")
"""The views the figures are drawn from."""


@dataclass(frozen=True)
class Figure:
    """One figure of an experiment.

    Attributes:
        name: Its name (``tradeoff``, ``accuracy_change``, ``energy_change``): the file stem.
        title: What it shows, in a few words.
        chart: The Altair chart (``chart.to_dict()`` is its Vega-Lite spec).
        caption: How to read it, and how its verdicts were reached.
        energy_method: How its energy figures were measured, in a sentence.
    """

    name: str
    title: str
    chart: Any
    caption: str
    energy_method: str

    def spec(self) -> dict[str, Any]:
        """The chart's Vega-Lite spec, its data inlined."""
        return self.chart.to_dict()

    def svg(self) -> str:
        """The chart as a standalone SVG document."""
        import vl_convert

        return str(vl_convert.vegalite_to_svg(self.spec()))

    def png(self, scale: float = 2.0) -> bytes:
        """The chart as a PNG image (``scale`` times its size in pixels)."""
        import vl_convert

        return bytes(vl_convert.vegalite_to_png(self.spec(), scale=scale))


def _methods(frame: pd.DataFrame, column: str) -> list[object]:
    return list(frame[column]) if column in frame.columns and len(frame) else []


def build_figures(views: Mapping[str, pd.DataFrame]) -> dict[str, Figure]:
    """The figures of the rows given, by name (only those that have something to draw).

    Args:
        views: The :data:`FIGURE_VIEWS` of one experiment as DataFrames.

    Returns:
        ``tradeoff`` (accuracy against energy over each configuration's tasks, with the Pareto
        front and the intervals), ``accuracy_change`` and ``energy_change`` (per task and ratio
        against the baseline).
    """
    from results_app import charts, frames

    figures: dict[str, Figure] = {}
    profile, runs = views["profile"], views["runs"]
    plottable, energy_title = frames.tradeoff_points(views["tradeoff"])
    if not plottable.empty:
        profiled = (plottable["energy_measure"] == "joules_per_token").any()
        methods = _methods(profile, "energy_method") if profiled else []
        methods = methods or _methods(runs, "measurement_method")
        figures[TRADEOFF] = Figure(
            TRADEOFF,
            "Accuracy against energy, with the Pareto front",
            charts.tradeoff_chart(plottable, energy_title=energy_title).properties(width=640),
            frames.tradeoff_caption(plottable),
            describe_method(methods),
        )
    changes = frames.task_changes(views["task_breakdown"])
    accuracy = changes[changes["metric_kind"] == "accuracy"] if len(changes) else changes
    if len(accuracy):
        figures[ACCURACY_CHANGE] = Figure(
            ACCURACY_CHANGE,
            "Change in accuracy per task against the baseline",
            charts.change_heatmap(accuracy, "relative_delta_value", "change in accuracy"),
            "Relative to the baseline (the uncompressed model) of the same experiment; each "
            "change's interval and verdict are in the accuracy table. "
            + frames.verdict_caption(accuracy, ("value_change",)),
            describe_method(_methods(runs, "measurement_method")),
        )
        figures[ENERGY_CHANGE] = Figure(
            ENERGY_CHANGE,
            "Change in net energy per task against the baseline",
            charts.change_heatmap(
                accuracy,
                "relative_delta_net_joules",
                "change in net energy",
                higher_is_better=False,
            ),
            "Net energy of the eval runs relative to the baseline's on the same task; the runs "
            "are measured apart (not interleaved), so these changes carry no verdict: the "
            "energy profile's paired changes are in the energy table.",
            describe_method(_methods(runs, "measurement_method")),
        )
    return figures


def write_figures(figures: Mapping[str, Figure], folder: Path) -> list[Path]:
    """Writes each figure as ``NAME.svg`` and ``NAME.png`` into ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        svg = folder / f"{name}.svg"
        svg.write_text(figure.svg(), encoding="utf-8")
        png = folder / f"{name}.png"
        png.write_bytes(figure.png())
        written += [svg, png]
    return written
