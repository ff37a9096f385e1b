"""Session-wide test setup: offline Hugging Face libraries and the cached reference model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run (HYPOTHESIS_PROFILE=ci in .ci/run), so a merge is
# never refused for an example no earlier run tried; local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Tests never reach the network: every model and dataset they use is built or shipped locally.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

# Under pytest-xdist (``make test`` runs one worker per core) each worker, and every job
# process or stack it starts, gets its share of the cores for torch's threads: on a loaded
# machine, two workers of two threads each spend their time waiting for each other's cores.
# Set before torch is imported, so it holds in this process and in every child.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.setdefault("OMP_NUM_THREADS", _THREADS)
    os.environ.setdefault("MKL_NUM_THREADS", _THREADS)


@pytest.fixture(scope="session")
def reference_model_dir() -> Path:
    """The reference tiny Llama's folder, built once into the greenprune cache if missing."""
    from greenprune.core.reference import ensure_reference_model

    return ensure_reference_model()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keeps each file on one worker, and starts the costliest work first.

    ``make test`` runs pytest-xdist with ``--dist loadgroup --no-loadscope-reorder``: a worker
    takes one group at a time in collection order. Every test joins its file's group, so a
    module's stack or server starts once, except in files that set ``SPREAD = True`` (tests
    with no shared fixture worth keeping, such as one process per bench), whose tests go to
    whichever worker is free. The cost of a group is the largest ``minutes`` of its ``slow``
    markers (``@pytest.mark.slow(minutes=5)``; 1 when not given, 0 for no slow test): groups
    are sorted costliest first, so a long file never starts last and runs alone at the end.
    The order within a file is kept.
    """
    cost: dict[str, float] = {}
    groups: list[str] = []
    for item in items:
        spread = getattr(item.module, "SPREAD", False) if item.module else False
        group = item.nodeid if spread else item.nodeid.split("::")[0]
        if not spread:
            item.add_marker(pytest.mark.xdist_group(name=group))
        groups.append(group)
        marker = item.get_closest_marker("slow")
        if marker is not None:
            minutes = float(marker.kwargs.get("minutes", 1))
            cost[group] = max(cost.get(group, 0.0), minutes)
    order = sorted(range(len(items)), key=lambda index: -cost.get(groups[index], 0.0))
    items[:] = [items[index] for index in order]
