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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest files first, so pytest-xdist starts them while the quick ones fill in.

    Workers take whole files (``--dist loadfile``) in collection order: a long file collected
    last runs alone at the end. A file's cost is the largest ``minutes`` of its ``slow``
    markers (``@pytest.mark.slow(minutes=5)``; 1 when not given, 0 for files with no slow
    test). The order within a file is kept.
    """
    cost: dict[Path, float] = {}
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is not None:
            minutes = float(marker.kwargs.get("minutes", 1))
            cost[item.path] = max(cost.get(item.path, 0.0), minutes)
    items.sort(key=lambda item: -cost.get(item.path, 0.0))
