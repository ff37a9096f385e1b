"""Category 2, the results store takes anything; then every read still answers.

1 MB and 35 MB strings, NUL bytes, inf/nan/-inf in every double of RecordEvalRun,
RecordPruneRun and RecordProfileRun, extreme finite values (one field, and every window of a
profile), a run of thousands of 4 KB metric names; afterwards every read (each QueryView view,
List*, ExportView csv/parquet, ``greenprune report``, List* and QueryView by a client with
gRPC's default 4 MiB receive limit) answers.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import grpc

from bench.adversarial.harness import MB, Campaign, patched_env
from bench.adversarial.messages import (
    INT_RANGES,
    Step,
    apply_path,
    is_double,
    is_int,
    is_string,
    message_class,
    path_text,
    scalar_paths,
)
from bench.adversarial.verdicts import ACCEPT, ACCEPTED, BAD, EITHER


def sample_records() -> tuple[list[Any], list[Any], list[Any]]:
    from tests import samples

    prunes, evals = samples.demo_study(experiment="adv")
    profile = samples.demo_profile(experiment="adv")
    return prunes, evals, [profile]


def category_store_writes(c: Campaign) -> None:
    """Seeds valid runs, then hostile and extreme ones."""
    from greenprune.api.results.v1 import results_pb2 as pb

    prunes, evals, profiles = sample_records()
    for run in prunes:
        c.call(
            "2",
            f"seed {run.request_id}",
            "results",
            "RecordPruneRun",
            pb.RecordPruneRunRequest(run=run),
            ACCEPT,
        )
    c.call(
        "2",
        "seed eval runs",
        "results",
        "BatchRecordEvalRuns",
        pb.BatchRecordEvalRunsRequest(runs=evals),
        ACCEPT,
    )
    for run in profiles:
        c.call(
            "2",
            f"seed {run.request_id}",
            "results",
            "RecordProfileRun",
            pb.RecordProfileRunRequest(run=run),
            ACCEPT,
        )
    kinds = [
        ("RecordEvalRun", evals[0], lambda run: pb.RecordEvalRunRequest(run=run)),
        ("RecordPruneRun", prunes[-1], lambda run: pb.RecordPruneRunRequest(run=run)),
        ("RecordProfileRun", profiles[0], lambda run: pb.RecordProfileRunRequest(run=run)),
    ]
    limit = 12 if c.quick else None
    counter = iter(range(10**6))
    big = c.big_string(c.big)
    for method, base, wrap in kinds:
        hostile: list[tuple[str, tuple[Step, ...], Any]] = []
        for path in scalar_paths(base, is_double):
            hostile += [(repr(v), path, v) for v in (math.inf, -math.inf, math.nan)]
        for path in scalar_paths(base, is_string):
            hostile += [(f"{len(big)} chars", path, big), ("NUL", path, "a\x00b")]
        for label, path, value in _sample(c, hostile, limit):
            run = type(base)()
            run.CopyFrom(base)
            try:
                apply_path(run, path, value)
            except (TypeError, ValueError) as exc:
                c.note(f"[2] {method} {path_text(path)}={label}: not settable ({exc})")
                continue
            if path[0][0] != "request_id":
                run.request_id = f"adv/hostile/{next(counter)}"
            c.call("2", f"{path_text(path)}={label}", "results", method, wrap(run))
        # Extreme but finite values may be stored; the reads at the end must still answer.
        extreme: list[tuple[str, tuple[Step, ...], Any]] = []
        for path in scalar_paths(base, is_double):
            extreme += [
                (repr(v), path, v)
                for v in (1.7976931348623157e308, -1.7976931348623157e308, 5e-324)
            ]
        for path in scalar_paths(base, is_int):
            extreme += [("int max", path, "max"), ("int min", path, "min")]
        for label, path, value in _sample(c, extreme, 6 if c.quick else None):
            run = type(base)()
            run.CopyFrom(base)
            if value in ("max", "min"):
                fd = _leaf(base, path)
                low, high = INT_RANGES[fd.cpp_type]
                value = high if value == "max" else low
            try:
                apply_path(run, path, value)
            except (TypeError, ValueError):
                continue
            run.experiment = "adv-extreme"
            if path[0][0] != "request_id":
                run.request_id = f"adv/extreme/{next(counter)}"
            c.call("2", f"extreme {path_text(path)}={label}", "results", method, wrap(run), EITHER)
    sizes = [("35 MB", 35 * MB)] if not c.quick else [("256 KB", 256 * 1024)]
    for label, size in sizes:
        for index in range(2):
            run = pb.EvalRun()
            run.CopyFrom(evals[0])
            run.request_id, run.model = f"adv/huge/{index}", "m" * size
            c.call(
                "2",
                f"model of {label} (#{index + 1})",
                "results",
                "RecordEvalRun",
                pb.RecordEvalRunRequest(run=run),
                timeout=120,
            )
        run = pb.PruneRun()
        run.CopyFrom(prunes[0])
        run.request_id, run.experiment = "adv/huge/prune", "e" * size
        c.call(
            "2",
            f"experiment of {label}",
            "results",
            "RecordPruneRun",
            pb.RecordPruneRunRequest(run=run),
            timeout=120,
        )
    # Every window of a profile at the float range's ends (one such run once made the profile
    # view and its exports INTERNAL for every reader), and a run of thousands of 4 KB metric
    # names (once a 20 MB page of ListEvalRuns): refused or stored, the reads must answer.
    from greenprune.api.eval.v1 import eval_pb2
    from tests import samples

    extreme_profile = samples.profile_run(
        "adv/extreme/profile",
        model="adv-m",
        costs={"adv-c": 1e-3},
        experiment="adv-extreme",
        rounds=3,
    )
    for index, point in enumerate(extreme_profile.result.points):
        point.net_joules = -1.7976931348623157e308 if index % 2 else 1.7976931348623157e308
        point.gross_joules, point.tokens = 1.7976931348623157e308, 2**63 - 1
    c.call(
        "2",
        "profile of extreme windows",
        "results",
        "RecordProfileRun",
        pb.RecordProfileRunRequest(run=extreme_profile),
        EITHER,
    )
    many = pb.EvalRun()
    many.CopyFrom(evals[0])
    many.request_id = "adv/huge/metrics"
    task = many.result.task
    many.result.metrics.extend(
        eval_pb2.MetricValue(task=task, metric=f"{i:05d}" + "m" * 4090, value=0.5)
        for i in range(1100 if c.quick else 5000)
    )
    c.call(
        "2",
        f"{len(many.result.metrics)} metrics of 4 KB names",
        "results",
        "BatchRecordEvalRuns",
        pb.BatchRecordEvalRunsRequest(runs=[many]),
        EITHER,
        timeout=120,
    )
    bad = pb.EvalRun()
    bad.CopyFrom(evals[1])
    bad.request_id = "adv/batch/bad"
    bad.result.metrics[0].value = math.inf
    good = pb.EvalRun()
    good.CopyFrom(evals[1])
    good.request_id = "adv/batch/good"
    c.call(
        "2",
        "one inf run among good ones",
        "results",
        "BatchRecordEvalRuns",
        pb.BatchRecordEvalRunsRequest(runs=[good, bad]),
    )


def _leaf(message: Any, path: Sequence[Step]) -> Any:
    for name, how in path[:-1]:
        message = getattr(message, name) if how is None else getattr(message, name)[how]
    return message.DESCRIPTOR.fields_by_name[path[-1][0]]


def _sample(c: Campaign, items: list[Any], limit: int | None) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    return c.rng.sample(items, limit)


def category_store_reads(c: Campaign) -> None:
    """Every read answers after everything the campaign stored (run last)."""
    from greenprune.api.results.v1 import results_pb2 as pb

    for view in pb.View.DESCRIPTOR.values:
        expect = EITHER if view.number == 0 else ACCEPT
        for label, view_filter in (("", None), (" experiment=adv-extreme", "adv-extreme")):
            request = pb.QueryViewRequest(view=view.number)
            if view_filter:
                request.filter.experiment = view_filter
            _read_pages(c, f"{view.name}{label}", "QueryView", request, expect)
        for fmt in (pb.EXPORT_FORMAT_CSV, pb.EXPORT_FORMAT_PARQUET):
            request = pb.ExportViewRequest(view=view.number, format=fmt)
            _read_pages(
                c, f"{view.name} {pb.ExportFormat.Name(fmt)}", "ExportView", request, expect
            )
    for method, request in (
        ("ListEvalRuns", pb.ListEvalRunsRequest()),
        ("ListEvalRuns", pb.ListEvalRunsRequest(page_size=1000)),
        ("ListPruneRuns", pb.ListPruneRunsRequest()),
        ("ListPruneRuns", pb.ListPruneRunsRequest(page_size=1000)),
    ):
        _read_pages(c, f"page_size={request.page_size}", method, request, ACCEPT)
    # A client with gRPC's default 4 MiB receive limit reads every page (README: about 4 MiB).
    small = grpc.insecure_channel(
        c.servers["results"].address,
        options=[("grpc.max_receive_message_length", 4 * MB)],
    )
    try:
        token = [("authorization", f"Bearer {c.token}")] if c.token else None
        for method, request in (
            ("ListEvalRuns", pb.ListEvalRunsRequest(page_size=1000)),
            ("ListPruneRuns", pb.ListPruneRunsRequest(page_size=1000)),
            ("QueryView", pb.QueryViewRequest(view=pb.VIEW_RUNS)),
        ):
            _read_pages(c, f"{method} at 4 MiB", method, request, ACCEPT, small, token)
    finally:
        small.close()
    for request_id in ("adv-0.2-greenprune_facts", "adv/batch/good"):
        c.call(
            "2",
            f"read back {request_id}",
            "results",
            "GetEvalRun",
            pb.GetEvalRunRequest(request_id=request_id),
            EITHER,
        )
    for experiment in ("", "adv", "adv-extreme"):
        for fmt in ("json", "csv", "table"):
            _report(c, experiment, fmt)


def _read_pages(
    c: Campaign,
    label: str,
    method: str,
    request: Any,
    expect: str,
    channel: grpc.Channel | None = None,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Reads every page of a read RPC (following next_page_token where the protos have one)."""
    out_type = message_class(c.method("results", method).output_type)
    pages = 0
    while True:
        answer = c.call(
            "2",
            f"read {label}" + (f" page {pages + 1}" if pages else ""),
            "results",
            method,
            request,
            expect,
            timeout=60,
            metadata=metadata,
            channel=channel,
        )
        pages += 1
        if answer.code != grpc.StatusCode.OK or answer.response is None:
            return
        response = out_type.FromString(answer.response)
        token = getattr(response, "next_page_token", "")
        if not token or "page_token" not in request.DESCRIPTOR.fields_by_name or pages >= 500:
            return
        request.page_token = token


def _report(c: Campaign, experiment: str, fmt: str) -> None:
    """``greenprune report --format FMT`` through the CLI's entry point, in this process."""
    from greenprune.client import cli

    argv = ["report", "--format", fmt, "--results", c.servers["results"].address]
    if experiment:
        argv += ["--experiment", experiment]
    label = f"greenprune {' '.join(argv[:3])}" + (
        f" --experiment {experiment}" if experiment else ""
    )
    out, err = io.StringIO(), io.StringIO()
    with (
        patched_env(GREENPRUNE_TOKEN=c.token),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(argv)
        except BaseException as exc:  # noqa: BLE001 - a traceback is the finding
            c.record("2", label, BAD, f"traceback: {type(exc).__name__}: {str(exc)[:200]}")
            return
    text = out.getvalue() + err.getvalue()
    if code != 0 or "Traceback" in text:
        c.record("2", label, BAD, f"exit {code}: {text.strip()[-300:]}")
        return
    if fmt == "json":
        try:
            json.loads(out.getvalue(), parse_constant=_refuse_constant)
        except ValueError as exc:
            c.record("2", label, BAD, f"not strict JSON: {str(exc)[:200]}")
            return
    c.record("2", label, ACCEPTED)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
