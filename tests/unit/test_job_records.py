"""Job tables store the spec and result messages as JSON; rows of earlier versions still read."""

from __future__ import annotations

from eval_service.eval_messages import spec_from_stored as eval_spec_from_stored
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core.message_records import from_json_dict, to_json_dict
from pruning_service.prune_messages import config_from_stored, normalized_spec, stored_spec


def test_a_prune_spec_round_trips_through_the_job_table_with_defaults_filled() -> None:
    spec = normalized_spec(pruning_pb2.PruneSpec(model="reference:tiny-llama", ratio=0.4))
    stored = stored_spec(spec)
    assert from_json_dict(stored, pruning_pb2.PruneSpec) == spec
    config = config_from_stored(stored)
    assert (config.method, config.ratio, config.round_to) == ("unspecified", 0.4, 1)
    assert config.calibration.samples == 32 and config.calibration.source == "reference"
    assert config.prune_attention_heads and config.prune_mlp


def test_prune_rows_of_earlier_versions_spell_the_method_by_name() -> None:
    legacy = {
        "model": "m",
        "method": "magnitude-l2",
        "ratio": 0.2,
        "calibration": {"samples": 8, "sequence_length": 64, "source": "reference"},
        "seed": 3,
    }
    config = config_from_stored(legacy)
    assert (config.method, config.calibration.samples, config.seed) == ("magnitude-l2", 8, 3)


def test_eval_rows_of_earlier_versions_nested_their_settings() -> None:
    legacy = {
        "checkpoint_id": "ckpt-1",
        "model": "",
        "config": {"tasks": ["t"], "limit": None, "batch_size": 4, "idle_seconds": 2.0},
    }
    spec = eval_spec_from_stored(legacy)
    assert spec.checkpoint_id == "ckpt-1" and list(spec.tasks) == ["t"]
    assert spec.batch_size == 4 and not spec.HasField("limit")
    fresh = eval_pb2.EvalSpec(model="reference:tiny-llama", tasks=["t"], limit=5)
    assert eval_spec_from_stored(to_json_dict(fresh)) == fresh
