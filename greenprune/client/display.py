"""Showing a run's progress in a terminal: rich progress bars, or one line per event."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from greenprune.client.plan import Plan, Step
from greenprune.client.runner import RECORDED, StepOutcome


class ProgressDisplay:
    """Overall and per-step progress bars (rich.progress).

    Args:
        progress: A started or not yet started ``rich.progress.Progress``.
    """

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._overall: Any = None
        self._tasks: dict[str, Any] = {}

    def planned(self, plan: Plan, recorded: set[str]) -> None:  # noqa: D102
        total = len(plan.steps)
        done = sum(1 for s in plan.steps if s.request_id in recorded)
        self._overall = self._progress.add_task(
            f"{plan.experiment}: {total} steps ({done} recorded)",
            total=total,
            completed=0,
            stage="",
        )

    def started(self, step: Step) -> None:  # noqa: D102
        self._tasks[step.request_id] = self._progress.add_task(
            step.label, total=1.0, completed=0.0, stage="submitted"
        )

    def updated(self, step: Step, stage: str, fraction: float) -> None:  # noqa: D102
        task = self._tasks.get(step.request_id)
        if task is not None:
            self._progress.update(task, completed=fraction, stage=stage)

    def finished(self, step: Step, outcome: StepOutcome) -> None:  # noqa: D102
        task = self._tasks.get(step.request_id)
        if task is not None:
            text = outcome.state if outcome.ok else f"[red]{outcome.state}[/]: {outcome.message}"
            self._progress.update(task, completed=1.0 if outcome.ok else None, stage=text)
        if self._overall is not None:
            self._progress.advance(self._overall, 1)


class LineDisplay:
    """One line per step that ends, for logs and pipes (no progress bars).

    Args:
        console: A ``rich.console.Console``.
    """

    def __init__(self, console: Any) -> None:
        self._console = console

    def planned(self, plan: Plan, recorded: set[str]) -> None:  # noqa: D102
        self._console.print(
            f"{plan.experiment}: {len(plan.steps)} steps, {len(recorded)} already recorded"
        )

    def started(self, step: Step) -> None:  # noqa: D102
        pass

    def updated(self, step: Step, stage: str, fraction: float) -> None:  # noqa: D102
        pass

    def finished(self, step: Step, outcome: StepOutcome) -> None:  # noqa: D102
        if outcome.state == RECORDED:
            return
        detail = f": {outcome.message}" if outcome.message else ""
        self._console.print(f"{outcome.state}: {step.label}{detail}", markup=False)


@contextlib.contextmanager
def rich_progress(console: Any) -> Iterator[ProgressDisplay]:
    """Shows progress bars on ``console`` while the block runs."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stage]}"),
        console=console,
    )
    with progress:
        yield ProgressDisplay(progress)
