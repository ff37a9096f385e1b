"""Recovery by distillation: LoRA tuned towards the unpruned model's logits, sparsity kept."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.client.plan import plan_experiment, request_id
from greenprune.client.spec import ExperimentFileError, load_experiment
from greenprune.core.checkpoint import load_checkpoint
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.message_records import from_json_dict, to_json_dict
from greenprune.core.models import load_source_model
from pruning_service import recovery, worker
from pruning_service.calibration import calibration_tokens
from pruning_service.prune_messages import config_from_stored, normalized_spec
from pruning_service.pruner import run_prune

REFERENCE = "reference:tiny-llama"


def _spec(**recovery_fields: object) -> pruning_pb2.PruneSpec:
    spec = pruning_pb2.PruneSpec(
        model=REFERENCE,
        method=pruning_pb2.PRUNING_METHOD_TAYLOR,
        sparsity=pruning_pb2.SPARSITY_MAGNITUDE,
        sparsity_pattern=pruning_pb2.SPARSITY_PATTERN_2_4,
    )
    if recovery_fields:
        spec.recovery.CopyFrom(pruning_pb2.RecoverySpec(**recovery_fields))
    return normalized_spec(spec)


@pytest.fixture(scope="module")
def distilled(reference_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2:4 checkpoint, unrecovered (run_prune) and distilled (the job's worker)."""
    root = tmp_path_factory.mktemp("distill")
    checkpoints = root / "checkpoints"
    plain = run_prune(
        config_from_stored(to_json_dict(_spec())),
        checkpoints_dir=checkpoints,
        checkpoint_id="unrecovered",
        models_root=root,
    )
    spec = _spec(
        steps=30,
        batch_size=4,
        sequence_length=32,
        learning_rate=2e-3,
        loss=pruning_pb2.RECOVERY_LOSS_DISTILL,
        temperature=2.0,
    )
    (root / "work").mkdir()
    result = worker.run(
        to_json_dict(spec),
        {
            "checkpoints_dir": str(checkpoints),
            "models_root": str(root),
            "job_id": "distilled",
            "workdir": str(root / "work"),
        },
        lambda stage, fraction: None,
    )
    parsed = from_json_dict(result, pruning_pb2.PruneResult)
    return {"root": root, "plain": plain, "result": parsed}


def _kl_to_teacher(
    student: torch.nn.Module, teacher: torch.nn.Module, tokens: torch.Tensor
) -> float:
    with torch.no_grad():
        return float(
            recovery.distillation_loss(
                student(input_ids=tokens).logits, teacher(input_ids=tokens).logits, 1.0
            )
        )


def test_distillation_lowers_the_kl_to_the_unpruned_model(distilled: dict) -> None:
    root = distilled["root"]
    teacher, tokenizer = load_source_model(REFERENCE, root)
    held_out = calibration_tokens(
        tokenizer, source="reference", samples=8, sequence_length=64, seed=11, models_root=root
    )
    before = load_checkpoint(distilled["plain"].path)[0]
    after = load_checkpoint(root / "checkpoints" / distilled["result"].checkpoint_id)[0]
    assert _kl_to_teacher(after, teacher, held_out) < _kl_to_teacher(before, teacher, held_out)


def test_the_distilled_checkpoint_keeps_its_2_4_zeros_and_records_loss_and_temperature(
    distilled: dict,
) -> None:
    result = distilled["result"]
    model, _, manifest = load_checkpoint(distilled["root"] / "checkpoints" / result.checkpoint_id)
    for name, module in model.model.layers.named_modules():
        if isinstance(module, torch.nn.Linear):
            groups = (module.weight == 0).reshape(module.weight.shape[0], -1, 4).sum(-1)
            assert bool((groups >= 2).all()), name
    record = manifest["recovery"]
    assert (record["loss"], record["temperature"]) == ("distill", 2.0)
    assert record["rezeroed_weights"] > 0  # merging the adapters had filled the zeros
    assert (result.recovery.loss, result.recovery.temperature) == ("distill", 2.0)
    assert result.recovery.rezeroed_weights == record["rezeroed_weights"]
    assert manifest["method_family"] == "magnitude-2:4+lora-distill"
    assert result.recovery.energy.net_joules.median > 0  # metered like LM-loss recovery
    assert result.recovery.final_loss < result.recovery.initial_loss


def test_distillation_loss_is_zero_on_the_teachers_logits_and_scales_with_t_squared() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, 11)
    student = torch.randn(2, 5, 11)
    assert float(recovery.distillation_loss(teacher, teacher, 3.0)) == pytest.approx(0, abs=1e-6)
    by_hand = (
        torch.nn.functional.kl_div(
            torch.log_softmax(student.reshape(-1, 11) / 2, -1),
            torch.softmax(teacher.reshape(-1, 11) / 2, -1),
            reduction="sum",
        )
        / 10
        * 4
    )
    assert float(recovery.distillation_loss(student, teacher, 2.0)) == pytest.approx(
        float(by_hand), rel=1e-5
    )


def test_an_unknown_loss_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = recovery.RecoveryConfig(loss="mse")
    with pytest.raises(InvalidArgumentError) as info:
        recovery.validate(config, tmp_path)
    assert info.value.field == "spec.recovery.loss"
    assert "'mse' is not one of lm, distill" in info.value.message


FILE = textwrap.dedent(
    """\
    name: recover
    models: [reference:tiny-llama]
    pruning:
      ratios: [0.0, 0.4]
    eval:
      tasks: [greenprune_facts]
    recovery:
      ratios: [0.4]
      steps: 10
    """
)


def test_the_file_plans_one_recovered_step_per_loss_and_lm_keeps_its_id(tmp_path: Path) -> None:
    path = tmp_path / "recover.yaml"
    path.write_text(FILE)
    (pruned, recovered) = [s for s in plan_experiment(load_experiment(path)).prune_steps][1:]
    path.write_text(FILE + "  losses: [lm, distill]\n  temperature: 2.0\n")
    steps = plan_experiment(load_experiment(path)).prune_steps
    lm, distill = [s for s in steps if s.recovered]
    assert lm.request_id == recovered.request_id  # the LM-loss copy keeps the id it had
    assert distill.request_id != lm.request_id and distill.distilled and not lm.distilled
    assert distill.spec.recovery.loss == pruning_pb2.RECOVERY_LOSS_DISTILL
    assert distill.spec.recovery.temperature == 2.0
    assert "distilled" in distill.label
    settings = load_experiment(path).experiment.recovery.model_dump(
        exclude={"ratios", "losses", "temperature"}
    )
    expected = request_id(
        "prune",
        {
            "pruned": pruned.request_id,
            "recovery": {**settings, "loss": "distill", "temperature": 2.0},
        },
    )
    assert distill.request_id == expected
    path.write_text(FILE + "  losses: [distill, distill]\n")
    with pytest.raises(ExperimentFileError) as info:
        load_experiment(path)
    assert "recovery.losses" in str(info.value) and "lists 'distill' twice" in str(info.value)
