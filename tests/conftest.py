"""Session-wide test setup: offline Hugging Face libraries and the cached reference model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the network: every model and dataset they use is built or shipped locally.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


@pytest.fixture(scope="session")
def reference_model_dir() -> Path:
    """The reference tiny Llama's folder, built once into the greenprune cache if missing."""
    from greenprune.reference import ensure_reference_model

    return ensure_reference_model()
