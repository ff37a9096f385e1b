"""Every bench's quick mode runs through ``python -m bench`` and reports its figures.

Benches rot silently when the code they call moves on: this runs each one's quick mode (small
sizes, one trial) as ``make bench`` runs them, in a process of its own, and checks the runner's
JSON. It asserts nothing about timings. The adversarial campaign's quick mode has a test of its
own (tests/rpc/test_adversarial_smoke.py), so it is left out here. Tests do not import bench:
the bench names come from ``python -m bench --list``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_ELSEWHERE = {"adversarial"}  # tests/rpc/test_adversarial_smoke.py runs its quick campaign
BENCHES = subprocess.run(
    [sys.executable, "-m", "bench", "--list"], cwd=REPO, capture_output=True, text=True, check=True
).stdout.split()


def run_bench(target: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Runs ``python -m bench --quick TARGET`` and returns the process and that bench's entry."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", target, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.is_file(), f"the runner wrote no {out}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    (entry,) = json.loads(out.read_text())["benches"]
    return done, entry


def test_the_runner_knows_every_bench() -> None:
    scripts = {path.stem for path in (REPO / "bench").glob("*.py")}
    helpers = {"__init__", "__main__", "figures", "services"}
    assert scripts - helpers <= set(BENCHES), "a bench script the runner does not run"
    assert "adversarial" in BENCHES and "gpu_check" in BENCHES


# About how long each quick mode takes on 2 cores (the costliest start first).
QUICK_MINUTES = {"gpu_check": 0, "results_ingest": 0}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow(minutes=QUICK_MINUTES.get(name, 1)))
        for name in BENCHES
        if name not in RUN_ELSEWHERE
    ],
)
def test_quick_mode_runs_and_reports_its_figures(name: str, tmp_path: Path) -> None:
    done, entry = run_bench(name, tmp_path)
    if entry["status"] == "skipped":
        assert name == "gpu_check" and entry["reason"] == "no CUDA device here", entry
        pytest.skip("the GPU check needs CUDA")
    assert done.returncode == 0 and entry["status"] == "ok", f"{name}: {entry['reason']}"
    figures: list[dict[str, Any]] = entry["figures"]
    assert figures, f"{name} reported no figures"
    for figure in figures:
        assert isinstance(figure["value"], float | int) and figure["name"], figure
        if figure["target"] is None:
            assert figure["meets"] is None, figure
        else:
            assert isinstance(figure["meets"], bool), figure
    assert name in done.stdout  # the table names the bench


BROKEN = {
    # What a schema or API change does to a bench: its import or call fails.
    "import_gone": (
        "from pruning_service.prune_messages import config_from_dict\n",
        "ImportError: cannot import name 'config_from_dict'",
        "exited 1",
    ),
    # A bench that ends well but reports nothing is no bench.
    "no_figures": ("print('done')\n", "done", "wrote no figures"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_bench_fails_the_run_and_says_which(case: str, tmp_path: Path) -> None:
    code, in_log, reason = BROKEN[case]
    script = tmp_path / f"broken_{case}.py"
    script.write_text(code)
    done, entry = run_bench(str(script), tmp_path)
    assert done.returncode == 1, done.stdout[-2000:]
    assert entry["name"] == f"broken_{case}" and entry["status"] == "failed", entry
    assert reason in entry["reason"] and in_log in entry["reason"], entry["reason"]
    assert f"broken_{case}" in done.stdout and "failed" in done.stdout
