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


SPREAD_FILES = frozenset({"tests/bench/test_bench_quick.py"})
"""Files whose tests share no fixture worth keeping (one process per bench): under
pytest-xdist each of their tests goes to whichever worker is free; every other file stays on
one worker, so a module's stack or server starts once."""


def _scope(nodeid: str) -> str:
    """A test's unit of scheduling: its file, or itself in a :data:`SPREAD_FILES` file."""
    path = nodeid.split("::", 1)[0]
    return nodeid if path in SPREAD_FILES else path


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's file scheduling, with :data:`SPREAD_FILES` spread test by test.

    (``--dist loadgroup`` would say the same with markers, but it renames node ids, which
    pytest 9 no longer allows, so every test went its own way.) Units go to the workers in
    collection order, the order :func:`pytest_collection_modifyitems` sets.
    """
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    config.option.loadscopereorder = False
    return FileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest units of scheduling first, so that a long file never starts last.

    A unit's cost (a file, or one test of a :data:`SPREAD_FILES` file) is the largest
    ``minutes`` of its ``slow`` markers (``@pytest.mark.slow(minutes=5)``; 1 when not given, 0
    for no slow test). The order within a file is kept.
    """
    cost: dict[str, float] = {}
    units = [_scope(item.nodeid) for item in items]
    for item, unit in zip(items, units, strict=True):
        marker = item.get_closest_marker("slow")
        if marker is not None:
            minutes = float(marker.kwargs.get("minutes", 1))
            cost[unit] = max(cost.get(unit, 0.0), minutes)
    order = sorted(range(len(items)), key=lambda index: -cost.get(units[index], 0.0))
    items[:] = [items[index] for index in order]
