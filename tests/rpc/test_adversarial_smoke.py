"""The adversarial campaign of ``bench/adversarial/`` in its quick form, on its cheap categories.

Client-chosen code (task folders and task sources), spec bounds, clean errors instead of
INTERNAL, the results store (hostile and extreme records, then every read and ``greenprune
report``) and bad tokens on every method of the three services: real services in this process,
no bad outcome, and each category tried something.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.adversarial.campaign import run_campaign


def test_quick_campaign_has_no_bad_outcomes(tmp_path: Path) -> None:
    started = time.monotonic()
    only = {"1", "2", "3", "7", "token"}
    results = run_campaign(quick=True, only=only, home=tmp_path, say=lambda line: None)
    bads = [f"[{bad.category}] {bad.request}: {bad.what}" for bad in results.bads]
    assert not bads, "\n".join(bads)
    store, tokens = results.tallies["2"], results.tallies["token"]
    assert store.tried > 0 and store.clean > 0 and store.accepted > 0, store
    assert tokens.tried > 0 and tokens.clean == tokens.tried, tokens
    for category in ("1", "3", "7"):
        tally = results.tallies[category]
        assert tally.clean > 0 and tally.clean + tally.accepted == tally.tried, tally
    assert time.monotonic() - started < 90
