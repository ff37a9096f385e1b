"""One source of limits: what the experiment file accepts, the services accept, and back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from eval_service.eval_messages import normalized_spec
from eval_service.evaluator import EvalConfig, validate_config, validate_profile
from greenprune.api.eval.v1 import eval_pb2
from greenprune.client.spec import ExperimentFileError, parse_experiment
from greenprune.core.checkpoint import MANIFEST_NAME
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import EVAL_SPEC, PROFILE_SPEC, PRUNE_SPEC, Limit
from pruning_service.pruner import CalibrationConfig, PruneConfig
from pruning_service.pruner import validate_config as check_prune

BASE = {
    "name": "limits",
    "models": ["reference:tiny-llama"],
    "pruning": {"ratios": [0.0]},
    "eval": {"tasks": ["greenprune_facts"], "device": "cpu"},
}


class _Tasks:
    all_tasks = ["greenprune_facts"]


def _edges(limit: Limit) -> tuple[list[float], list[float]]:
    """Values on both sides of each bound: (accepted, refused)."""
    integral = isinstance(limit.low, int) and isinstance(limit.high, int)
    step = 1 if integral else 0.01
    top = limit.high - step if limit.below_high else limit.high
    refused_top = limit.high if limit.below_high else limit.high + step
    return [limit.low, top], [limit.low - step, refused_top]


def _file_accepts(section: tuple[str, ...], value: Any) -> bool:
    data = copy.deepcopy(BASE)
    node = data
    for part in section[:-1]:
        node = node.setdefault(part, {})
    node[section[-1]] = [value] if section == ("pruning", "ratios") else value
    try:
        parse_experiment(yaml.safe_dump(data))
    except ExperimentFileError:
        return False
    return True


def _prune_accepts(path: str, value: Any, tmp_path: Path) -> bool:
    # A hub id: its shape is unknown without the network, so only the field bounds are checked
    # (the reference model's 4 layers and 128-token context would refuse more).
    fields: dict[str, Any] = {"model": "example-org/example-model"}
    if path.startswith("calibration."):
        fields["calibration"] = CalibrationConfig(**{path.split(".")[1]: value})
    else:
        fields[path] = value
    if path == "sparsity_ratio" and value:
        fields["sparsity"] = "wanda"  # a share to zero needs a sparsity
    try:
        check_prune(PruneConfig(**fields), tmp_path)
    except InvalidArgumentError as error:
        assert error.field == f"spec.{path}"
        return False
    return True


def _prune_section(path: str) -> tuple[str, ...]:
    if path in ("ratio", "sparsity_ratio"):
        return ("pruning", "ratios")  # a sparsity variant alone zeroes the file's ratio
    if path == "seed":
        return ("seed",)
    return ("pruning", *path.split("."))


@pytest.mark.parametrize("path", sorted(PRUNE_SPEC))
def test_prune_limits_agree_between_the_file_and_the_service(path: str, tmp_path: Path) -> None:
    accepted, refused = _edges(PRUNE_SPEC[path])
    for value in accepted:
        assert _file_accepts(_prune_section(path), value), (path, value)
        assert _prune_accepts(path, value, tmp_path), (path, value)
    for value in refused:
        assert not _file_accepts(_prune_section(path), value), (path, value)
        assert not _prune_accepts(path, value, tmp_path), (path, value)


def _eval_accepts(path: str, value: Any) -> bool:
    config = EvalConfig(tasks=("greenprune_facts",), device="cpu", **{path: value})
    try:
        validate_config(config, _Tasks())
    except InvalidArgumentError as error:
        assert error.field == f"spec.{path}"
        return False
    return True


@pytest.mark.parametrize("path", sorted(EVAL_SPEC))
def test_eval_limits_agree_between_the_file_and_the_service(path: str) -> None:
    section = ("seed",) if path == "seed" else ("eval", path)
    accepted, refused = _edges(EVAL_SPEC[path])
    for value in accepted:
        assert _file_accepts(section, value), (path, value)
        assert _eval_accepts(path, value), (path, value)
    for value in refused:
        assert not _file_accepts(section, value), (path, value)
        assert not _eval_accepts(path, value), (path, value)


def _profile_accepts(path: str, value: Any, checkpoints: Path) -> bool:
    spec = eval_pb2.EvalSpec(device="cpu", profile=eval_pb2.ProfileSpec(checkpoint_ids=["a"]))
    setattr(spec.profile, path.split(".")[1], value)
    try:
        validate_profile(normalized_spec(spec, 8, 3), checkpoints)
    except InvalidArgumentError as error:
        assert error.field == f"spec.{path}"
        return False
    return True


@pytest.mark.parametrize("path", sorted(PROFILE_SPEC))
def test_profile_limits_agree_between_the_file_and_the_service(path: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / MANIFEST_NAME).write_text("{}")
    section = ("energy", path.split(".")[1])
    accepted, refused = _edges(PROFILE_SPEC[path])
    for value in accepted:
        assert _file_accepts(section, value), (path, value)
        assert _profile_accepts(path, value, tmp_path), (path, value)
    for value in refused:
        if value == 0:
            continue  # a zero in a request means "the default", by proto3's rules
        assert not _file_accepts(section, value), (path, value)
        assert not _profile_accepts(path, value, tmp_path), (path, value)


def test_the_defaults_are_the_same_in_the_file_and_the_services() -> None:
    experiment = parse_experiment(yaml.safe_dump(BASE))
    config = EvalConfig(tasks=("x",))
    for path, limit in EVAL_SPEC.items():
        if path != "seed" and limit.default is not None:
            assert getattr(experiment.eval, path) == getattr(config, path) == limit.default
    calibration = CalibrationConfig()
    assert experiment.pruning.calibration.samples == calibration.samples
    assert experiment.pruning.round_to == PruneConfig(model="m").round_to
    spec = normalized_spec(eval_pb2.EvalSpec(profile=eval_pb2.ProfileSpec()), 8, 3)
    for path in PROFILE_SPEC:
        name = path.split(".")[1]
        assert getattr(spec.profile, name) == pytest.approx(getattr(experiment.energy, name))
    assert list(spec.profile.batch_sizes) == experiment.energy.batch_sizes
