"""Second hardening pass over real gRPC: submit checks, checkpoint reads, bounds, validate_only.

A job is refused at submit when the ResultsService would refuse what it records; checkpoint
reads never follow a link out of the checkpoints root and never fail on bad bytes; every list
of a spec is bounded; ``validate_only`` and ``--dry-run`` refuse what the job would refuse
from the model's config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.client import cli
from greenprune.core.checkpoint import FORMAT_NAME, MANIFEST_NAME
from greenprune.rpc.server_thread import ServerThread
from tests.rpc.conftest import start_service

CODE = grpc.StatusCode
PruneStub = pruning_pb2_grpc.PruningServiceStub
EvalStub = eval_pb2_grpc.EvalServiceStub
MAGNITUDE = pruning_pb2.PRUNING_METHOD_MAGNITUDE_L2
TAYLOR = pruning_pb2.PRUNING_METHOD_TAYLOR


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerThread]]:
    home = tmp_path_factory.mktemp("submit")
    started = {kind: start_service(kind, home / kind) for kind in ("pruning", "eval")}
    for server in started.values():  # an existing root, so the OS judges a name under it
        Path(server.settings.models_root).mkdir(parents=True, exist_ok=True)
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def prune(servers: dict[str, ServerThread]) -> Iterator[pruning_pb2_grpc.PruningServiceStub]:
    with grpc.insecure_channel(servers["pruning"].address) as channel:
        yield pruning_pb2_grpc.PruningServiceStub(channel)


@pytest.fixture(scope="module")
def evaluate(servers: dict[str, ServerThread]) -> Iterator[eval_pb2_grpc.EvalServiceStub]:
    with grpc.insecure_channel(servers["eval"].address) as channel:
        yield eval_pb2_grpc.EvalServiceStub(channel)


def _refused(call: Callable[..., object], request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=60)
    return caught.value.code(), caught.value.details()


def _prune_request(request_id: str = "r1", **spec: object) -> pruning_pb2.CreatePruneJobRequest:
    fields = {"model": "reference:tiny-llama", "ratio": 0.2, "method": MAGNITUDE, **spec}
    return pruning_pb2.CreatePruneJobRequest(
        request_id=request_id, spec=pruning_pb2.PruneSpec(**fields)
    )


def _eval_request(request_id: str = "r1", **spec: object) -> eval_pb2.CreateEvalJobRequest:
    fields = {"model": "reference:tiny-llama", "tasks": ["greenprune_facts"], **spec}
    return eval_pb2.CreateEvalJobRequest(request_id=request_id, spec=eval_pb2.EvalSpec(**fields))


# -- request_id and strings: refused at submit by the rule the ResultsService records by ----------


@pytest.mark.parametrize("request_id", ["a\x01b", "line\nbreak", "\x02", "x" * 257])
def test_a_request_id_the_results_service_would_refuse_is_refused_at_submit(
    prune: PruneStub, evaluate: EvalStub, request_id: str
) -> None:
    reason = "holds control characters" if len(request_id) < 257 else "at most 256"
    for call, request in (
        (prune.CreatePruneJob, _prune_request(request_id)),
        (evaluate.CreateEvalJob, _eval_request(request_id)),
    ):
        code, details = _refused(call, request)
        assert code == CODE.INVALID_ARGUMENT and details.startswith("request_id: "), details
        assert reason in details
    assert not prune.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(), timeout=10).jobs
    assert not evaluate.ListEvalJobs(eval_pb2.ListEvalJobsRequest(), timeout=10).jobs


def test_an_eval_run_id_too_long_to_record_is_refused_at_submit(evaluate: EvalStub) -> None:
    # The job records one run per task, keyed "{request_id}/{task}": 250 + 1 + 16 > 256.
    code, details = _refused(evaluate.CreateEvalJob, _eval_request("r" * 250))
    assert code == CODE.INVALID_ARGUMENT and details.startswith("request_id: ")
    assert (
        "recorded run id" in details and "/greenprune_facts" in details and "at most 256" in details
    )


@pytest.mark.parametrize(
    ("create", "field", "reason"),
    [
        (
            pruning_pb2.CreatePruneJobRequest(request_id="r", experiment="exp\x1b[31m"),
            "experiment",
            "control characters",
        ),
        (_prune_request(model="reference:tiny\x00llama"), "spec.model", "control characters"),
        (_eval_request(tasks=["greenprune_facts\n"]), "spec.tasks[0]", "control characters"),
        (_eval_request(tasks=["greenprune_facts"] * 65), "spec.tasks", "at most 64"),
    ],
)
def test_every_string_and_list_is_checked_at_submit(
    prune: PruneStub, evaluate: EvalStub, create: object, field: str, reason: str
) -> None:
    is_prune = isinstance(create, pruning_pb2.CreatePruneJobRequest)
    code, details = _refused(prune.CreatePruneJob if is_prune else evaluate.CreateEvalJob, create)
    assert code == CODE.INVALID_ARGUMENT and details.startswith(f"{field}: ") and reason in details


# -- bounds and paths ---------------------------------------------------------------------------


def test_recovery_target_modules_are_bounded(prune: PruneStub) -> None:
    recovery = pruning_pb2.RecoverySpec(target_modules=[f"m{i}" for i in range(10_000)])
    code, details = _refused(prune.CreatePruneJob, _prune_request(recovery=recovery))
    assert code == CODE.INVALID_ARGUMENT
    assert details == "spec.recovery.target_modules: lists 10000 entries (at most 64)"


def test_a_calibration_source_the_os_cannot_name_is_an_invalid_argument(
    prune: PruneStub,
) -> None:
    calibration = pruning_pb2.CalibrationSpec(source="x" * 256)
    code, details = _refused(prune.CreatePruneJob, _prune_request(calibration=calibration))
    assert code == CODE.INVALID_ARGUMENT, details
    assert details.startswith("spec.calibration.source: ") and "not a usable path" in details


@pytest.mark.parametrize(
    ("paths", "field", "reason"),
    [
        (["/a" * (512 * 1024)], "spec.task_paths[0]", "at most 4096"),
        ([f"/p{i}" for i in range(10_000)], "spec.task_paths", "lists 10000 entries"),
    ],
)
def test_task_paths_are_bounded_before_any_path_work(
    evaluate: EvalStub, paths: list[str], field: str, reason: str
) -> None:
    code, details = _refused(evaluate.CreateEvalJob, _eval_request(task_paths=paths))
    assert code == CODE.INVALID_ARGUMENT and details.startswith(f"{field}: ") and reason in details


# -- checkpoint reads ---------------------------------------------------------------------------


def _manifest(secret: str = "") -> str:
    return json.dumps({"format": FORMAT_NAME, "checkpoint_id": "x", "note": secret})


@pytest.fixture(scope="module")
def planted(servers: dict[str, ServerThread], tmp_path_factory: pytest.TempPathFactory) -> str:
    """Plants, in both services' checkpoint folders, checkpoints that lead outside or are bad."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / MANIFEST_NAME).write_text(_manifest("SECRET-OUTSIDE"))
    (outside / "passwd").write_text(_manifest("SECRET-PASSWD"))
    for server in servers.values():
        root = Path(server.settings.checkpoints_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "plain").mkdir()
        (root / "plain" / MANIFEST_NAME).write_text(_manifest())
        (root / "badbytes").mkdir()
        (root / "badbytes" / MANIFEST_NAME).write_bytes(b'{"format": "\xff\xfe"}')
        (root / "linkedmanifest").mkdir()
        (root / "linkedmanifest" / MANIFEST_NAME).symlink_to(outside / "passwd")
        (root / "linkedfolder").symlink_to(outside, target_is_directory=True)
        (root / "linkedweights").mkdir()
        (root / "linkedweights" / MANIFEST_NAME).write_text(_manifest())
        (root / "linkedweights" / "model.safetensors").symlink_to(outside / "passwd")
    return "SECRET"


@pytest.mark.parametrize(
    ("checkpoint_id", "reason"),
    [
        ("badbytes", "is not UTF-8 text"),
        ("linkedmanifest", "holds a symbolic link ('greenprune.json')"),
        ("linkedfolder", "is a symbolic link"),
        ("linkedweights", "holds a symbolic link ('model.safetensors')"),
    ],
)
def test_checkpoint_reads_never_follow_links_or_fail_on_bad_bytes(
    prune: PruneStub, evaluate: EvalStub, planted: str, checkpoint_id: str, reason: str
) -> None:
    request = pruning_pb2.GetCheckpointRequest(checkpoint_id=checkpoint_id)
    code, details = _refused(prune.GetCheckpoint, request)
    assert code == CODE.FAILED_PRECONDITION and reason in details, details
    assert planted not in details
    if checkpoint_id == "badbytes":  # the eval service reads the manifest in the job
        return
    code, details = _refused(evaluate.CreateEvalJob, _eval_request(checkpoint_id=checkpoint_id))
    assert code == CODE.FAILED_PRECONDITION and reason in details and planted not in details


def test_a_plain_checkpoint_manifest_is_served(prune: PruneStub, planted: str) -> None:
    response = prune.GetCheckpoint(pruning_pb2.GetCheckpointRequest(checkpoint_id="plain"))
    assert json.loads(response.manifest_json)["format"] == FORMAT_NAME


# -- validate_only and --dry-run check against the model's config -------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (
            {"method": TAYLOR, "calibration": pruning_pb2.CalibrationSpec(sequence_length=256)},
            "spec.calibration.sequence_length",
            "256 exceeds the model's context of 128",
        ),
        ({"keep_first_layers": 1000}, "spec.keep_last_layers", "the model's 4 layers"),
        (
            {"recovery": pruning_pb2.RecoverySpec(target_modules=["nope_proj"])},
            "spec.recovery.target_modules",
            "is a linear layer of the model",
        ),
    ],
)
def test_validate_only_refuses_what_the_job_would_refuse_from_the_model_config(
    prune: PruneStub, spec: dict[str, object], field: str, reason: str
) -> None:
    request = _prune_request("", **spec)
    request.validate_only = True
    code, details = _refused(prune.CreatePruneJob, request)
    assert code == CODE.INVALID_ARGUMENT and details.startswith(f"{field}: ") and reason in details


def test_dry_run_says_what_the_services_refuse(
    servers: dict[str, ServerThread], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        "name: dry\nmodels: [reference:tiny-llama]\n"
        "pruning: {method: magnitude-l2, ratios: [0.2], keep_first_layers: 1000}\n"
        "eval: {tasks: [greenprune_facts], limit: 8, repeats: 1}\n"
        f"services: {{pruning: '{servers['pruning'].address}',"
        f" eval: '{servers['eval'].address}', results: '127.0.0.1:1'}}\n"
    )
    assert cli.main(["run", str(experiment), "--dry-run"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "nothing was submitted" in err and "keep_first_layers + keep_last_layers" in err
