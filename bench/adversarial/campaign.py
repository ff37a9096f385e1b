"""Runs the chosen categories in their order, and prints the summary table."""

from __future__ import annotations

import json
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.adversarial.app_access import category_app
from bench.adversarial.clean_errors import category_clean_errors
from bench.adversarial.client_code import category_code, check_markers
from bench.adversarial.file_check import category_file_check
from bench.adversarial.harness import CATEGORIES, DEADLINE_SECONDS, Campaign
from bench.adversarial.health import category_health
from bench.adversarial.library_failures import finish_library_failure, start_library_failure
from bench.adversarial.lost_work import category_lost_work
from bench.adversarial.random_bytes import category_bytes
from bench.adversarial.results_store import category_store_reads, category_store_writes
from bench.adversarial.spec_bounds import category_bounds
from bench.adversarial.tokens import category_tokens
from bench.adversarial.verdicts import BAD, Results, Tally


def run_campaign(
    quick: bool = False,
    only: set[str] | None = None,
    seed: int = 0,
    home: Path | None = None,
    say: Callable[[str], None] = print,
    deadline: float = DEADLINE_SECONDS,
) -> Results:
    """Runs the chosen categories (all by default) and returns the tallies and bad outcomes."""
    chosen = set(CATEGORIES) if not only else set(only)
    unknown = chosen - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
    home = home or Path(tempfile.mkdtemp(prefix="greenprune-adversarial-"))
    started = time.monotonic()
    c = Campaign(home, quick=quick, seed=seed, say=say, deadline=deadline)
    kinds = ["results"]
    if chosen & {"1", "3", "4", "6", "7", "8", "9", "bytes", "token"}:
        kinds += ["pruning", "eval"]
    c.start(kinds)
    say(
        f"services up in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{k} {s.address}" for k, s in c.servers.items())
    )
    background = None
    if "4" in chosen:
        background = threading.Thread(target=category_lost_work, args=(c,), daemon=True)
        background.start()
    library_job = start_library_failure(c) if "9" in chosen else None

    def step(key: str, function: Callable[[Campaign], None]) -> None:
        if key not in chosen:
            return
        begun = time.monotonic()
        try:
            function(c)
        except Exception as exc:  # noqa: BLE001 - a crash of the campaign is reported, not hidden
            c.record(
                key,
                f"category {key} itself",
                BAD,
                f"the campaign crashed: {type(exc).__name__}: {str(exc)[:300]}",
            )
            c.note(traceback.format_exc()[-1500:])
        tally = c.tallies[key]
        say(
            f"[{key}] {CATEGORIES[key]}: {tally.tried} tried, {tally.clean} clean, "
            f"{tally.accepted} accepted, {tally.bad} bad ({time.monotonic() - begun:.1f} s)"
        )

    try:
        step("6", category_health)
        step("token", category_tokens)
        step("1", category_code)
        step("7", category_clean_errors)
        step("3", category_bounds)
        step("2", category_store_writes)
        step("bytes", category_bytes)
        step("8", category_file_check)
        step("5", category_app)
        if "9" in chosen:
            step("9", lambda camp: finish_library_failure(camp, library_job))
        if "1" in chosen or "8" in chosen:
            check_markers(c)
        if background is not None:
            say("waiting for the lost-work scenario (category 4)...")
            background.join(600)
            if background.is_alive():
                c.record("4", "lost-work scenario", BAD, "did not finish within 10 minutes")
            tally = c.tallies["4"]
            say(
                f"[4] {CATEGORIES['4']}: {tally.tried} tried, {tally.accepted} accepted, "
                f"{tally.bad} bad"
            )
        if "2" in chosen:
            step("2", category_store_reads)  # last: after everything else was stored
    finally:
        c.stop()
        with (home / "requests.jsonl").open("w") as log:
            for entry in c.log:
                log.write(json.dumps(entry) + "\n")
    return Results(c.tallies, c.bads, c.notes, time.monotonic() - started, home)


def print_summary(results: Results, console: Any, only: set[str] | None = None) -> None:
    """The table of counts, then each bad outcome and the notes."""
    from rich.table import Table

    table = Table(title="adversarial campaign (issue 16)", header_style="bold")
    for column in ("#", "category", "requests tried", "clean errors", "accepted", "bad"):
        table.add_column(column, justify="right" if column not in ("#", "category") else "left")
    total = Tally()
    for key, name in CATEGORIES.items():
        tally = results.tallies[key]
        if only and key not in only:
            continue
        table.add_row(
            key, name, str(tally.tried), str(tally.clean), str(tally.accepted), str(tally.bad)
        )
        for attr in ("tried", "clean", "accepted", "bad"):
            setattr(total, attr, getattr(total, attr) + getattr(tally, attr))
    table.add_row(
        "",
        "total",
        str(total.tried),
        str(total.clean),
        str(total.accepted),
        str(total.bad),
        style="bold",
    )
    console.print(table)
    console.print(f"wall time {results.seconds:.0f} s")
    if results.bads:
        console.print(f"\n{len(results.bads)} bad outcome(s):", style="bold red")
        for bad in results.bads:
            console.print(
                f"  [{bad.category}] {bad.request}\n      -> {bad.what}",
                markup=False,
                highlight=False,
            )
    if results.notes:
        console.print("\nnotes:")
        for text in results.notes:
            console.print(f"  {text}", markup=False, highlight=False)
