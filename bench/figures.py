"""The figures a bench reports: each with its target and whether it meets it, written as JSON.

Every bench takes ``--quick`` (small sizes, one trial: does it still run and print its figures)
and ``--json PATH`` (its figures, for ``python -m bench``). A figure without a target is a
finding to report, not a requirement.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """A bound on a figure: at most, at least, or both (a range)."""

    at_most: float | None = None
    at_least: float | None = None

    def meets(self, value: float) -> bool:
        """Whether ``value`` lies within the bound (NaN never does)."""
        if math.isnan(value):
            return False
        low_ok = self.at_least is None or value >= self.at_least
        return low_ok and (self.at_most is None or value <= self.at_most)

    def __str__(self) -> str:
        if self.at_most is not None and self.at_least is not None:
            return f"{self.at_least:g}-{self.at_most:g}"
        if self.at_most is not None:
            return f"<= {self.at_most:g}"
        return f">= {self.at_least:g}"


def at_most(bound: float) -> Target:
    """The figure must not exceed ``bound``."""
    return Target(at_most=bound)


def at_least(bound: float) -> Target:
    """The figure must reach ``bound``."""
    return Target(at_least=bound)


def between(low: float, high: float) -> Target:
    """The figure must lie in ``[low, high]``."""
    return Target(at_most=high, at_least=low)


@dataclass(frozen=True)
class Figure:
    """One reported figure (a ratio or a count), its target and its unit."""

    name: str
    value: float
    target: Target | None = None
    unit: str = ""

    def record(self) -> dict[str, Any]:
        """The figure as JSON: name, value, unit, target (text and bounds) and meets."""
        target = self.target
        return {
            "name": self.name,
            "value": None if math.isnan(self.value) else self.value,
            "unit": self.unit,
            "target": str(target) if target else None,
            "at_most": target.at_most if target else None,
            "at_least": target.at_least if target else None,
            "meets": target.meets(self.value) if target else None,
        }

    def line(self) -> str:
        """One printed line: the figure, its value and its target."""
        unit = f" {self.unit}" if self.unit else ""
        if self.target is None:
            return f"{self.name}: {self.value:.3f}{unit} (no target: a finding)"
        verdict = "meets" if self.target.meets(self.value) else "MISSES"
        return f"{self.name}: {self.value:.3f}{unit} (target {self.target}: {verdict})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--quick`` and ``--json`` to a bench's parser."""
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one trial: check it runs"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")


def report(
    bench: str,
    figures: list[Figure],
    args: argparse.Namespace,
    details: dict[str, Any] | None = None,
) -> None:
    """Prints the figures and, with ``--json``, writes them with the bench's details."""
    print("figures:")
    for figure in figures:
        print(f"  {figure.line()}")
    if args.json is not None:
        write_json(args.json, bench, figures, quick=bool(args.quick), details=details)


def write_json(
    path: Path,
    bench: str,
    figures: list[Figure],
    *,
    quick: bool,
    details: dict[str, Any] | None = None,
) -> None:
    """Writes a bench's figures (and its details) as JSON to ``path``."""
    payload = {
        "bench": bench,
        "quick": quick,
        "figures": [figure.record() for figure in figures],
        "details": details or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))


def parse(parser: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Parses the arguments; with ``--quick``, options left at their default take ``quick``'s."""
    args = parser.parse_args()
    if args.quick:
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args
