"""``python -m bench.adversarial``: runs the campaign and prints its summary.

The outcome is also written as JSON to ``summary.json`` in the campaign's state folder
(``--home``), next to ``requests.jsonl`` (every request and its verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bench.adversarial.campaign import print_summary, run_campaign
from bench.adversarial.file_check import file_worker
from bench.adversarial.harness import CATEGORIES, DEADLINE_SECONDS
from bench.figures import Figure, at_most, write_json

NO_BAD_OUTCOME = at_most(0)


def _quiet_fds(log: Path) -> TextIO:
    """Sends fds 1 and 2 (job processes' and libraries' chatter) to ``log``.

    Returns:
        A stream on the original stdout.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the campaign and prints the summary; 1 when any bad outcome occurred."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--file-worker"]:
        return file_worker(Path(args[1]), int(args[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts and strings")
    parser.add_argument(
        "--only", default="", help="comma-separated categories: " + ",".join(CATEGORIES)
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the random requests")
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    parser.add_argument(
        "--home", type=Path, help="the state folder, kept (default: a temporary one)"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEADLINE_SECONDS,
        help="seconds a request may go unanswered before it counts as a hang",
    )
    parser.add_argument("--verbose", action="store_true", help="do not silence the services")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    options = parser.parse_args(args)
    only = {part.strip() for part in options.only.split(",") if part.strip()} or None
    from rich.console import Console

    home = options.home or Path(tempfile.mkdtemp(prefix="greenprune-adversarial-"))
    home.mkdir(parents=True, exist_ok=True)
    out: TextIO = sys.stdout if options.verbose else _quiet_fds(home / "campaign.log")
    console = Console(file=out, highlight=False, width=160)
    results = run_campaign(
        options.quick,
        only,
        options.seed,
        home,
        say=lambda line: console.print(line, markup=False),
        deadline=options.deadline,
    )
    print_summary(results, console, only)
    summary = results.summary()
    (home / "summary.json").write_text(json.dumps(summary, indent=1))
    if options.json is not None:
        tallies = summary["tallies"].values()
        figures = [
            Figure("adversarial: bad outcomes", len(results.bads), NO_BAD_OUTCOME),
            Figure("adversarial: requests tried", sum(t["tried"] for t in tallies)),
            Figure("adversarial: requests refused cleanly", sum(t["clean"] for t in tallies)),
        ]
        write_json(options.json, "adversarial", figures, quick=options.quick, details=summary)
    if not options.keep and not options.home and results.ok:
        shutil.rmtree(home, ignore_errors=True)
    else:
        console.print(f"every request and its verdict: {home / 'requests.jsonl'}")
        if not options.verbose:
            console.print(f"service and job output: {home / 'campaign.log'}")
    return 0 if results.ok else 1


if __name__ == "__main__":
    sys.exit(main())
