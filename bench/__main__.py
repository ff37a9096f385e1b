"""``python -m bench``: runs every bench, prints one table of figures and writes it as JSON.

Each bench runs as its own process (``--json`` to a file of its own, its output to a log next
to the JSON) and the runner gathers their figures: bench, figure, value, target, meets.
The GPU check runs only where CUDA exists; elsewhere it is reported as skipped.

Run: ``python -m bench [--quick] [--json artifacts/bench.json] [--skip NAME ...] [BENCH ...]``
where BENCH is a bench's name (``--list`` shows them) or the path of a bench script that
takes ``--quick`` and ``--json``. Exits 1 when any bench failed (crashed, timed out or wrote no
figures); a figure that misses its target is reported, not a failure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "artifacts" / "bench.json"


@dataclass(frozen=True)
class Bench:
    """A bench: its name, the ``python`` arguments that run it, and whether it needs CUDA."""

    name: str
    arguments: tuple[str, ...]
    needs_cuda: bool = False


BENCHES: tuple[Bench, ...] = (
    Bench("results_ingest", ("bench/results_ingest.py",)),
    Bench("results_views", ("bench/results_views.py",)),
    Bench("prune_overhead", ("bench/prune_overhead.py",)),
    Bench("eval_overhead", ("bench/eval_overhead.py",)),
    Bench("energy_signal", ("bench/energy_signal.py",)),
    Bench("compress_methods", ("bench/compress_methods.py",)),
    Bench("recovery", ("bench/recovery.py",)),
    Bench("recovery_builds", ("bench/recovery_builds.py",)),
    Bench("ray_overhead", ("bench/ray_overhead.py",)),
    Bench("adversarial", ("-m", "bench.adversarial")),
    Bench("gpu_check", ("bench/gpu_check.py",), needs_cuda=True),
)


@dataclass
class Outcome:
    """What one bench did: ok, failed or skipped, with its figures or the reason."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    log: str = ""
    figures: list[dict[str, Any]] | None = None

    def record(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "reason": self.reason,
            "log": self.log,
            "figures": self.figures or [],
        }


def chosen(names: list[str], skip: list[str]) -> list[Bench]:
    """The benches named (all when none), a script path standing for a bench of its own."""
    known = {bench.name: bench for bench in BENCHES}
    picked = []
    for name in names or list(known):
        if name in known:
            picked.append(known[name])
        elif name.endswith(".py") and Path(name).is_file():
            picked.append(Bench(Path(name).stem, (str(Path(name).resolve()),)))
        else:
            raise SystemExit(f"no bench {name!r} (known: {', '.join(known)}, or a script path)")
    unknown = sorted(set(skip) - set(known))
    if unknown:
        raise SystemExit(f"--skip names no bench: {', '.join(unknown)}")
    return [bench for bench in picked if bench.name not in skip]


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (asked in a child, so the runner stays light)."""
    code = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def run_one(bench: Bench, quick: bool, folder: Path, timeout: float | None) -> Outcome:
    """Runs one bench, its output to ``folder/NAME.log``, and reads its figures."""
    figures_path = folder / f"{bench.name}.json"
    log_path = folder / f"{bench.name}.log"
    figures_path.unlink(missing_ok=True)
    command = [sys.executable, *bench.arguments, "--json", str(figures_path)]
    command += ["--quick"] if quick else []
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env |= {"HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    with log_path.open("w") as log:
        try:
            returncode = subprocess.run(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = None
    outcome = Outcome(bench.name, "ok", time.perf_counter() - started, log=str(log_path))
    if returncode is None:
        outcome.status, outcome.reason = "failed", f"timed out after {timeout:.0f} s"
    elif returncode != 0:
        outcome.status, outcome.reason = "failed", f"exited {returncode}"
    if figures_path.is_file():
        outcome.figures = json.loads(figures_path.read_text())["figures"]
    if outcome.status == "ok" and not outcome.figures:
        outcome.status, outcome.reason = "failed", f"wrote no figures to {figures_path}"
    if outcome.status == "failed":
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        outcome.reason += "; the end of its log:\n" + "\n".join(tail)
    return outcome


def table(outcomes: list[Outcome], quick: bool) -> Any:
    """The rich table of every figure (and of every bench that failed or was skipped)."""
    from rich.table import Table

    title = "bench figures" + (" (quick: small sizes, one trial; timings mean little)" * quick)
    grid = Table(title=title)
    for column in ("bench", "figure", "value", "target", "meets"):
        grid.add_column(column, justify="right" if column == "value" else "left")
    for outcome in outcomes:
        if outcome.status != "ok":
            first = outcome.reason.splitlines()[0] if outcome.reason else ""
            style = "red" if outcome.status == "failed" else "yellow"
            grid.add_row(outcome.name, f"[{style}]{outcome.status}[/]: {first}", "", "", "")
            continue
        for figure in outcome.figures or []:
            value = figure["value"]
            meets = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[figure["meets"]]
            unit = f" {figure['unit']}" if figure["unit"] else ""
            text = "nan" if value is None else f"{value:.3f}{unit}"
            target = figure["target"] or "none (finding)"
            grid.add_row(outcome.name, figure["name"], text, target, meets)
    return grid


def main() -> int:
    """Runs the benches asked for; 1 when any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help="bench names or script paths (default: all)")
    parser.add_argument("--quick", action="store_true", help="each bench's quick mode")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the table goes")
    parser.add_argument("--skip", nargs="+", default=[], help="bench names to leave out")
    parser.add_argument("--timeout", type=float, help="seconds one bench may run")
    parser.add_argument("--list", action="store_true", help="print the bench names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(bench.name for bench in BENCHES))
        return 0
    from rich.console import Console

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    folder = args.json.resolve().parent / "bench-runs"
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = []
    cuda: bool | None = None
    for bench in chosen(args.benches, args.skip):
        if bench.needs_cuda:
            cuda = cuda_available() if cuda is None else cuda
            if not cuda:
                outcomes.append(Outcome(bench.name, "skipped", reason="no CUDA device here"))
                console.print(f"{bench.name}: skipped (no CUDA device here)")
                continue
        console.print(f"{bench.name}: running ({'quick' if args.quick else 'full'})")
        outcome = run_one(bench, args.quick, folder, args.timeout)
        outcomes.append(outcome)
        console.print(f"{bench.name}: {outcome.status} in {outcome.seconds:.0f} s")
        if outcome.status == "failed":
            console.print(outcome.reason, markup=False)
    console.print(table(outcomes, args.quick))
    payload = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "benches": [outcome.record() for outcome in outcomes],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1))
    console.print(f"written to {args.json} (each bench's log in {folder})")
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
