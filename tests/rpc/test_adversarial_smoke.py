"""The adversarial campaign of ``bench/adversarial/`` in its quick form, on its cheap categories.

Client-chosen code (task folders and task sources), spec bounds, clean errors instead of
INTERNAL, the results store (hostile and extreme records, then every read and ``greenprune
report``) and bad tokens on every method of the three services: real services in its process,
no bad outcome, and each category tried something. It runs as the bench runs it
(``python -m bench.adversarial``) and reads its ``summary.json``: tests do not import bench.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow(minutes=1)
def test_quick_campaign_has_no_bad_outcomes(tmp_path: Path) -> None:
    # A request is a hang only past a generous deadline: on a loaded machine the EvalService's
    # first task lookups alone can take longer than the campaign's default.
    command = [sys.executable, "-m", "bench.adversarial", "--quick", "--home", str(tmp_path)]
    command += ["--deadline", "300"]
    done = subprocess.run(
        [*command, "--only", "1,2,3,7,token"], cwd=REPO, capture_output=True, text=True
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    bads = [f"[{bad['category']}] {bad['request']}: {bad['what']}" for bad in summary["bads"]]
    assert not bads, "\n".join(bads)
    assert done.returncode == 0, done.stdout[-2000:]
    tallies = summary["tallies"]
    store, tokens = tallies["2"], tallies["token"]
    assert store["tried"] > 0 and store["clean"] > 0 and store["accepted"] > 0, store
    assert tokens["tried"] > 0 and tokens["clean"] == tokens["tried"], tokens
    for category in ("1", "3", "7"):
        tally = tallies[category]
        assert tally["clean"] > 0 and tally["clean"] + tally["accepted"] == tally["tried"], tally
