"""Category 7, clean errors: page tokens, names and huge inputs answer short, clean errors."""

from __future__ import annotations

import random
from typing import Any

from bench.adversarial.harness import REFERENCE, Campaign, eval_spec
from bench.adversarial.verdicts import EITHER, REFUSE

BAD_PAGE_TOKENS: list[str] = [
    "²",
    "9" * 30,
    "9223372036854775808",
    "-1",
    "1e3",
    " 1",
    "٣",
    "0x10",
    "1.5",
    "\x00",
    "x" * 100_000,
]
"""Page tokens no server issued (each refused INVALID_ARGUMENT)."""

BAD_NAMES: list[tuple[str, str]] = [
    ("300 characters", "m" * 300),
    ("NUL", "bad\x00name"),
    ("newline", "a\nb"),
    ("reference:nope", "reference:nope"),
    ("reference: + 300 chars", "reference:" + "x" * 300),
    ("../../../../etc", "../../../../etc"),
    ("/etc", "/etc"),
    ("empty", ""),
    ("HUGE", "{huge}"),
]
"""Model names, checkpoint ids and task names nobody may use; HUGE is 10 MB (64 KB quick)."""


def _names(c: Campaign) -> list[tuple[str, str]]:
    huge = c.big_string(c.huge)
    return [(label, huge if value == "{huge}" else value) for label, value in BAD_NAMES]


def category_clean_errors(c: Campaign) -> None:
    """Inputs that once answered INTERNAL: each must be a clean error with short details."""
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.api.results.v1 import results_pb2 as pb

    counter = iter(range(10**6))
    huge = c.big_string(c.huge)
    randoms = [_random_text(c.rng) for _ in range(5 if c.quick else 40)]
    for service, method in (
        ("results", "ListEvalRuns"),
        ("results", "ListPruneRuns"),
        ("pruning", "ListPruneJobs"),
        ("eval", "ListEvalJobs"),
        ("results", "QueryView"),
        ("results", "ExportView"),
    ):
        if service not in c.servers or not c.has(service, method, "page_token"):
            continue
        for token in BAD_PAGE_TOKENS:
            label = f"page_token {token[:12]!r}" + (
                f" ({len(token)} chars)" if len(token) > 12 else ""
            )
            request = c.request(service, method, page_token=token)
            _view_fields(request)
            c.call("7", label, service, method, request, REFUSE, field_hint="page_token")
        for token in randoms:
            request = c.request(service, method, page_token=token)
            _view_fields(request)
            c.call("7", f"random page_token {token[:12]!r}", service, method, request, EITHER)
        for size, expect in ((-1, REFUSE), (-(2**31), REFUSE), (2**31 - 1, EITHER)):
            if "page_size" in request.DESCRIPTOR.fields_by_name:
                request = c.request(service, method, page_size=size)
                _view_fields(request)
                c.call("7", f"page_size {size}", service, method, request, expect)
    names = _names(c)
    if "pruning" in c.servers:
        for label, name in names:
            spec = pruning_pb2.PruneSpec(
                model=name,
                method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1,
                ratio=0.2,
                prune_mlp=True,
            )
            request = pruning_pb2.CreatePruneJobRequest(
                request_id=f"names-{next(counter)}", spec=spec
            )
            c.call(
                "7", f"spec.model {label}", "pruning", "CreatePruneJob", request, field_hint="model"
            )
        base = pruning_pb2.PruneSpec(
            model=REFERENCE,
            method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1,
            ratio=0.2,
            prune_mlp=True,
        )
        for label, fields in (
            ("request_id HUGE", {"request_id": huge}),
            ("request_id empty", {"request_id": ""}),
            ("experiment HUGE", {"request_id": "names-exp-1", "experiment": huge}),
            ("experiment NUL", {"request_id": "names-exp-2", "experiment": "a\x00b"}),
            ("calibration.source HUGE", {"request_id": "names-src"}),
        ):
            spec = pruning_pb2.PruneSpec()
            spec.CopyFrom(base)
            if label.startswith("calibration"):
                spec.calibration.source = huge
            since = len(c.created)
            c.call(
                "7",
                label,
                "pruning",
                "CreatePruneJob",
                pruning_pb2.CreatePruneJobRequest(spec=spec, **fields),
            )
            c.cancel_created(since)
        for label, name in names + [
            ("../..", "../.."),
            ("ckpt-\x00", "ckpt-\x00"),
            ("nope", "nope"),
        ]:
            c.call(
                "7",
                f"checkpoint_id {label}",
                "pruning",
                "GetCheckpoint",
                pruning_pb2.GetCheckpointRequest(checkpoint_id=name),
            )
    if "eval" in c.servers:
        for label, name in names:
            for field_name, spec in (
                ("spec.model", eval_spec(model=name)),
                ("spec.checkpoint_id", eval_spec(checkpoint_id=name)),
                ("spec.tasks[0]", eval_spec(tasks=[name])),
                ("spec.device", eval_spec(device=name or "x")),
                ("spec.task_paths[0]", eval_spec(task_paths=[name])),
            ):
                request = c.request(
                    "eval", "CreateEvalJob", request_id=f"names-{next(counter)}", spec=spec
                )
                since = len(c.created)
                c.call("7", f"{field_name} {label}", "eval", "CreateEvalJob", request)
                c.cancel_created(since)
    for service, collection, prefix in (
        ("pruning", "PruneJob", "pruneJobs"),
        ("eval", "EvalJob", "evalJobs"),
    ):
        if service not in c.servers:
            continue
        bad_names = [
            ("empty", ""),
            ("collection only", f"{prefix}/"),
            ("../", f"{prefix}/../x"),
            ("other collection", "jobs/x/y"),
            ("two ids", f"{prefix}/a/b"),
            ("300 digits", f"{prefix}/" + "9" * 300),
            ("NUL", f"{prefix}/a\x00b"),
            ("unknown id", f"{prefix}/nope"),
            ("HUGE", f"{prefix}/" + huge),
        ]
        for verb in ("Get", "Cancel", "Watch"):
            for label, name in bad_names:
                c.call(
                    "7",
                    f"name {label}",
                    service,
                    f"{verb}{collection}",
                    c._named(service, f"{verb}{collection}", name),
                    timeout=10,
                )
    for method in ("GetPruneRun", "GetEvalRun", "GetProfileRun"):
        for label, value in (("empty", ""), ("NUL", "a\x00b"), ("unknown", "nope"), ("HUGE", huge)):
            c.call(
                "7",
                f"request_id {label}",
                "results",
                method,
                c.request("results", method, request_id=value),
            )
    for method in ("QueryView", "ExportView"):
        for label, fields, expect in (
            ("view 999", {"view": 999}, REFUSE),
            ("filter.experiment HUGE", {"view": pb.VIEW_RUNS}, EITHER),
            ("filter.model NUL", {"view": pb.VIEW_RUNS}, EITHER),
        ):
            request = c.request("results", method, **fields)
            if method == "ExportView":
                request.format = pb.EXPORT_FORMAT_CSV
            if "HUGE" in label:
                request.filter.experiment = huge
            if "NUL" in label:
                request.filter.model = "a\x00b"
            c.call("7", label, "results", method, request, expect)
        if method == "ExportView":
            c.call(
                "7",
                "format 999",
                "results",
                method,
                pb.ExportViewRequest(view=pb.VIEW_RUNS, format=999),
            )
    for method in ("ListEvalRuns", "ListPruneRuns"):
        c.call(
            "7",
            "experiment HUGE",
            "results",
            method,
            c.request("results", method, experiment=huge),
            EITHER,
        )


def _view_fields(request: Any) -> None:
    from greenprune.api.results.v1 import results_pb2 as pb

    if "view" in request.DESCRIPTOR.fields_by_name:
        request.view = pb.VIEW_RUNS
    if "format" in request.DESCRIPTOR.fields_by_name:
        request.format = pb.EXPORT_FORMAT_CSV


def _random_text(rng: random.Random) -> str:
    alphabet = "0123456789abcxyz-_=+/ .\t²٣é✓\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
