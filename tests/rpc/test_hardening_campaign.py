"""What bench/adversarial/ found after the first hardening pass, kept as regression tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2
from greenprune.rpc.errors import MAX_MESSAGE_CHARS
from greenprune.rpc.server_thread import ServerThread
from results_app.data import table_to_frame

HUGE = "x" * (10 * 1024 * 1024)


@pytest.fixture
def stubs(
    service_factory: Callable[..., ServerThread],
) -> Iterator[tuple[pruning_pb2_grpc.PruningServiceStub, eval_pb2_grpc.EvalServiceStub, Path]]:
    pruning, evaluation = service_factory("pruning"), service_factory("eval")
    with (
        grpc.insecure_channel(pruning.address) as pchan,
        grpc.insecure_channel(evaluation.address) as echan,
    ):
        yield (
            pruning_pb2_grpc.PruningServiceStub(pchan),
            eval_pb2_grpc.EvalServiceStub(echan),
            Path(evaluation.settings.task_roots[0]),
        )


def _refused(
    call: Callable[..., object],
    request: object,
    field: str,
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
) -> grpc.RpcError:
    """The refusal of ``request``: ``code``, a short message that starts with ``field``."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=60)
    error = caught.value
    assert error.code() == code, (error.code(), error.details()[:300])
    assert error.details().startswith(field), (field, error.details()[:300])
    assert len(error.details()) <= MAX_MESSAGE_CHARS + 40
    return error


def test_validate_only_checks_a_profile_as_a_job_would(stubs) -> None:  # noqa: ANN001
    _, evaluation, _ = stubs
    bad = [
        (eval_pb2.ProfileSpec(), "spec.profile.checkpoint_ids"),
        (eval_pb2.ProfileSpec(checkpoint_ids=["c1"], rounds=2**31 - 1), "spec.profile.rounds"),
        (
            eval_pb2.ProfileSpec(checkpoint_ids=["c1"], window_seconds=float("nan")),
            "spec.profile.window_seconds",
        ),
        (eval_pb2.ProfileSpec(checkpoint_ids=["c1"], batch_sizes=[0]), "spec.profile.batch_sizes"),
        (eval_pb2.ProfileSpec(checkpoint_ids=["../etc"]), "spec.profile.checkpoint_ids[0]"),
    ]
    for profile, field in bad:
        request = eval_pb2.CreateEvalJobRequest(
            spec=eval_pb2.EvalSpec(profile=profile), validate_only=True
        )
        _refused(evaluation.CreateEvalJob, request, field)
    spec = eval_pb2.EvalSpec(profile=eval_pb2.ProfileSpec(checkpoint_ids=["c1", "c2"]), repeats=-5)
    request = eval_pb2.CreateEvalJobRequest(spec=spec, validate_only=True)
    _refused(evaluation.CreateEvalJob, request, "spec.repeats")
    spec.repeats = 0  # a checkpoint that is not written yet is fine when only validating
    ok = evaluation.CreateEvalJob(
        eval_pb2.CreateEvalJobRequest(spec=spec, validate_only=True), timeout=60
    )
    assert ok.job.name == "" and list(ok.job.spec.profile.checkpoint_ids) == ["c1", "c2"]


def test_model_names_and_task_folders_that_break_paths_are_refused(stubs) -> None:  # noqa: ANN001
    _, evaluation, root = stubs
    root.mkdir(parents=True, exist_ok=True)
    for model in ("bad\x00name", HUGE, "a" * 300, "x/" + "y" * 300):
        spec = eval_pb2.EvalSpec(model=model, tasks=["greenprune_facts"])
        request = eval_pb2.CreateEvalJobRequest(request_id="m", spec=spec)
        _refused(evaluation.CreateEvalJob, request, "spec.model")
    spec = eval_pb2.EvalSpec(
        model="reference:tiny-llama",
        tasks=["greenprune_facts"],
        task_paths=[str(root / ("x" * 300))],
    )
    request = eval_pb2.CreateEvalJobRequest(request_id="t", spec=spec)
    _refused(evaluation.CreateEvalJob, request, "spec.task_paths[0]")


def test_errors_never_echo_a_huge_input(stubs) -> None:  # noqa: ANN001
    pruning, evaluation, _ = stubs
    missing = grpc.StatusCode.NOT_FOUND  # a well-formed name: no such job, its id cut short
    name = "pruneJobs/" + HUGE
    _refused(pruning.GetPruneJob, pruning_pb2.GetPruneJobRequest(name=name), "job 'xxx", missing)
    request = pruning_pb2.CancelPruneJobRequest(name=name)
    _refused(pruning.CancelPruneJob, request, "job 'xxx", missing)
    request = eval_pb2.GetEvalJobRequest(name="evalJobs/" + HUGE)
    _refused(evaluation.GetEvalJob, request, "job 'xxx", missing)
    request = pruning_pb2.GetCheckpointRequest(checkpoint_id=HUGE)
    _refused(pruning.GetCheckpoint, request, "checkpoint_id")


@pytest.mark.parametrize("experiment", ["a\x00b", HUGE])
def test_a_job_whose_experiment_could_never_be_recorded_is_refused(stubs, experiment: str) -> None:  # noqa: ANN001
    pruning, _, _ = stubs
    spec = pruning_pb2.PruneSpec(
        model="reference:tiny-llama", ratio=0.2, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2
    )
    request = pruning_pb2.CreatePruneJobRequest(request_id="x", spec=spec, experiment=experiment)
    _refused(pruning.CreatePruneJob, request, "experiment")
    assert not pruning.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(), timeout=10).jobs


def test_the_app_reads_int64_extremes() -> None:
    table = results_pb2.Table(columns=[results_pb2.Column(name="samples", type="int64")])
    for value in (2**63 - 1, 3, None):
        row = table.rows.add()
        if value is None:
            row.values.add().null_value = 0
        else:
            row.values.add().number_value = value
    frame = table_to_frame(table)
    assert frame["samples"].iloc[1] == 3 and frame["samples"].isna().iloc[2]
