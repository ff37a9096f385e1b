"""One spelling of the pruning methods across the experiment file, the API and the store."""

from __future__ import annotations

import pytest

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.errors import InvalidArgumentError
from greenprune.rpc.convert import method_name, method_value
from pruning_service.convert import method_from_pb
from pruning_service.pruner import METHODS


@pytest.mark.parametrize("name", METHODS)
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
