"""One spelling of the pruning methods across the experiment file, the API and the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import PRUNING_METHODS, method_name, method_value
from pruning_service.prune_messages import config_from_spec, normalized_spec
from pruning_service.pruner import validate_config


def method_from_pb(value: int) -> str:
    spec = pruning_pb2.PruneSpec(model="reference:tiny-llama", method=value)
    config = config_from_spec(normalized_spec(spec))
    validate_config(config, Path("/nonexistent"))
    return config.method


def test_the_methods_are_the_proto_enum_in_its_order() -> None:
    assert PRUNING_METHODS == ("magnitude-l1", "magnitude-l2", "taylor", "random")


@pytest.mark.parametrize("name", PRUNING_METHODS)
def test_every_method_round_trips_through_its_enum_value(name: str) -> None:
    value = method_value(name)
    assert value != pruning_pb2.PRUNING_METHOD_UNSPECIFIED
    assert method_name(value) == name and method_from_pb(value) == name


@pytest.mark.parametrize("value", [pruning_pb2.PRUNING_METHOD_UNSPECIFIED, 99])
def test_an_unset_or_unknown_method_is_refused_naming_the_allowed_ones(value: int) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        method_from_pb(value)
    assert caught.value.field == "spec.method"
    assert caught.value.message == (
        "must be one of PRUNING_METHOD_MAGNITUDE_L1, PRUNING_METHOD_MAGNITUDE_L2, "
        "PRUNING_METHOD_TAYLOR, PRUNING_METHOD_RANDOM"
    )


def test_unknown_names_and_values_have_explicit_fallbacks() -> None:
    assert method_value("magnitude-l3") == pruning_pb2.PRUNING_METHOD_UNSPECIFIED
    assert method_name(99) == "unknown-99"
