"""The embedded default: a reference tiny Llama trained offline on a synthetic world.

Experiment files name these models ``reference:<name>``; ``ensure_reference_model`` returns a
Hugging Face folder that plain ``AutoModelForCausalLM`` / ``AutoTokenizer`` load.
"""

from __future__ import annotations

from greenprune.core.reference.build import (
    BuildReport,
    Recipe,
    build_reference_model,
    default_cache_dir,
    ensure_reference_model,
    reference_model_config,
    reference_model_names,
)
from greenprune.core.reference.world import calibration_texts

__all__ = [
    "BuildReport",
    "Recipe",
    "build_reference_model",
    "calibration_texts",
    "default_cache_dir",
    "ensure_reference_model",
    "reference_model_config",
    "reference_model_names",
]
