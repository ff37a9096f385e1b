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


@pytest.fixture(scope="session")
def reference_model_dir() -> Path:
    """The reference tiny Llama's folder, built once into the greenprune cache if missing."""
    from greenprune.core.reference import ensure_reference_model

    return ensure_reference_model()
