"""A typed Python client for the greenprune services: jobs, experiments, results, checkpoints.

Five lines from ``greenprune up`` to a DataFrame::

    from greenprune import Client

    client = Client()  # the local stack; GREENPRUNE_TOKEN is sent when set
    client.run("experiments/demo.yaml")
    df = client.results("runs", experiment="demo")

Everything here is a thin layer over the generated stubs (``greenprune.api``): specs are the
proto messages (or dicts in their JSON form), results are the typed proto results, and errors
are the kinds of :mod:`greenprune.core.errors` the services raise (``RpcError`` is their base),
carrying the gRPC code and, for INVALID_ARGUMENT, the field.
The CLI uses this client for what it reads (``greenprune report``, ``greenprune cancel``).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml
from google.protobuf import json_format

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client import report, runner, stack
from greenprune.client.plan import plan_experiment
from greenprune.client.spec import LoadedExperiment, load_experiment, parse_experiment
from greenprune.client.task_files import read_task_folder
from greenprune.core.checkpoint import MANIFEST_NAME
from greenprune.core.errors import (
    FailedPreconditionError,
    GreenpruneError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    error_for,
)
from greenprune.core.limits import method_value
from greenprune.rpc.client import read_pages, sync_channel
from greenprune.rpc.job_api import EVAL_JOBS, PRUNE_JOBS, JobApi

T = TypeVar("T")

RPC_TIMEOUT_S = runner.RPC_TIMEOUT_S
VIEW_TIMEOUT_S = runner.VIEW_TIMEOUT_S
TERMINAL = runner.TERMINAL

__all__ = [
    "Checkpoint",
    "Client",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "JobFailedError",
    "JobHandle",
    "NotFoundError",
    "Progress",
    "ResourceExhaustedError",
    "RpcError",
    "UnauthenticatedError",
    "UnavailableError",
]


# -- errors ---------------------------------------------------------------------------------------

RpcError = GreenpruneError
"""What a failed call raises: the kind the service raised (:mod:`greenprune.core.errors`).

Besides its kind, an error from a call carries ``code`` (the ``grpc.StatusCode``), ``details``
(the service's message) and ``field`` (an invalid argument's request field, ``spec.ratio``).
"""


class JobFailedError(GreenpruneError):
    """A job ended FAILED or CANCELLED; ``job`` is its last state, ``code`` its error's code."""

    def __init__(self, job: Any) -> None:
        status = job.status
        if status.state == jobs_pb2.JOB_STATE_CANCELLED:
            code, details = grpc.StatusCode.CANCELLED, status.error.message or "cancelled"
        else:
            code = _status_code(status.error.code) or grpc.StatusCode.UNKNOWN
            details = status.error.message or "the job failed"
        super().__init__(f"{code.name}: {job.name}: {details}")
        self.code_name, self.code, self.details = code.name, code, f"{job.name}: {details}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            self.field = InvalidArgumentError.split(details)[0]
        self.job = job


def _status_code(value: int) -> grpc.StatusCode | None:
    return next((code for code in grpc.StatusCode if code.value[0] == value), None)


def _received(code: grpc.StatusCode, details: str) -> GreenpruneError:
    error = error_for(code.name, details)
    error.code, error.details = code, details  # type: ignore[attr-defined]
    return error


def error_from_rpc(exc: grpc.RpcError) -> GreenpruneError:
    """Returns the typed error for a failed call (``exc`` is a ``grpc.RpcError``)."""
    return _received(exc.code(), exc.details() or "")  # type: ignore[attr-defined]


def _call(rpc: Any, request: Any, timeout: float | None = RPC_TIMEOUT_S) -> Any:
    try:
        return rpc(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc) from None


# -- specs ---------------------------------------------------------------------------------------


def prune_spec(spec: pruning_pb2.PruneSpec | Mapping[str, Any]) -> pruning_pb2.PruneSpec:
    """A PruneSpec from a message or a dict in its JSON form (``method`` may be ``"taylor"``)."""
    if isinstance(spec, pruning_pb2.PruneSpec):
        return spec
    data = dict(spec)
    method = data.get("method")
    if isinstance(method, str) and not method.startswith("PRUNING_METHOD_"):
        data["method"] = method_value(method)
    return json_format.ParseDict(data, pruning_pb2.PruneSpec())


def eval_spec(spec: eval_pb2.EvalSpec | Mapping[str, Any]) -> eval_pb2.EvalSpec:
    """An EvalSpec from a message or a dict in its JSON form (``tasks`` may be one string)."""
    if isinstance(spec, eval_pb2.EvalSpec):
        return spec
    data = dict(spec)
    if isinstance(data.get("tasks"), str):
        data["tasks"] = [data["tasks"]]
    return json_format.ParseDict(data, eval_pb2.EvalSpec())


# -- jobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One update of a job: its state name (``RUNNING``), stage, progress in [0, 1] and message."""

    state: str
    stage: str
    progress: float
    job: Any

    @property
    def done(self) -> bool:
        """Whether the job reached a terminal state."""
        return self.job.status.state in TERMINAL


def _progress(job: Any) -> Progress:
    state = jobs_pb2.JobState.Name(job.status.state).removeprefix("JOB_STATE_")
    return Progress(state, job.status.stage, job.status.progress, job)


class JobHandle:
    """A prune or eval job: wait for it, watch it, cancel it, read its typed result.

    Attributes:
        name: The job's resource name (``pruneJobs/...`` or ``evalJobs/...``).
        job: The job message as last seen.
    """

    def __init__(self, api: JobApi, stub: Any, job: Any) -> None:
        self._api, self._stub = api, stub
        self.job = job
        self.name: str = job.name

    def __repr__(self) -> str:
        return f"JobHandle({self.name!r}, state={self.state})"

    @property
    def state(self) -> str:
        """The state name as last seen: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED."""
        return _progress(self.job).state

    @property
    def done(self) -> bool:
        """Whether the job was last seen in a terminal state."""
        return self.job.status.state in TERMINAL

    def refresh(self) -> Any:
        """Fetches the job again and returns it."""
        response = _call(self._api.get(self._stub), self._api.get_request(name=self.name))
        self.job = response.job
        return self.job

    def watch(self, timeout: float | None = None) -> Iterator[Progress]:
        """Yields the job's progress on every change until it is done (or ``timeout`` s)."""
        if self.done:
            yield _progress(self.job)
            return
        request = self._api.watch_request(name=self.name)
        try:
            for message in self._api.watch(self._stub)(request, timeout=timeout):
                self.job = message.job
                yield _progress(self.job)
                if self.done:
                    return
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                raise TimeoutError(f"{self.name} is not done after {timeout} s") from None
            raise error_from_rpc(exc) from None
        self.refresh()
        if self.done:
            yield _progress(self.job)

    def wait(self, timeout: float | None = None) -> Any:
        """Waits until the job is done and returns its typed result.

        Raises:
            TimeoutError: Not done within ``timeout`` seconds (the job keeps running).
            JobFailedError: The job failed or was cancelled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            for _ in self.watch(left):
                pass
        return self.result

    def cancel(self) -> Any:
        """Cancels the job (a cancelled job writes nothing) and returns its state then."""
        response = _call(self._api.cancel(self._stub), self._api.cancel_request(name=self.name))
        self.job = response.job
        return self.job

    @property
    def result(self) -> Any:
        """The typed result (PruneResult, EvalResult) of a succeeded job.

        Raises:
            RuntimeError: The job is not done yet (call :meth:`wait`).
            JobFailedError: The job failed or was cancelled.
        """
        state = self.job.status.state
        if state == jobs_pb2.JOB_STATE_SUCCEEDED:
            return self.job.result
        if state in TERMINAL:
            raise JobFailedError(self.job)
        raise RuntimeError(f"{self.name} is {self.state}; wait() for it first")


# -- checkpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A pruned checkpoint: its manifest, and its folder when this machine can read it."""

    id: str
    manifest: dict[str, Any]
    path: Path | None


# -- the client ----------------------------------------------------------------------------------


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to its end, also from inside a running loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _view(name: str | int) -> int:
    if isinstance(name, int):
        return name
    key = name.upper().replace("-", "_")
    try:
        return results_pb2.View.Value(key if key.startswith("VIEW_") else f"VIEW_{key}")
    except ValueError:
        known = ", ".join(v.removeprefix("VIEW_").lower() for v in results_pb2.View.keys()[1:])
        raise ValueError(f"no view {name!r} (known: {known})") from None


class Client:
    """A blocking client of the three greenprune services.

    Args:
        results: The ResultsService address (default: the local stack's).
        pruning: The PruningService address (default: the local stack's).
        eval: The EvalService address (default: the local stack's).
        token: The bearer token (default: ``GREENPRUNE_TOKEN``).
        checkpoints_dir: Where checkpoints are on this machine (default: the local stack's).
    """

    def __init__(
        self,
        results: str | None = None,
        pruning: str | None = None,
        eval: str | None = None,  # noqa: A002 - the service's name
        token: str | None = None,
        checkpoints_dir: str | Path | None = None,
    ) -> None:
        local = stack.local_addresses()
        self.addresses = runner.Addresses(
            pruning=pruning or local["pruning"],
            eval=eval or local["eval"],
            results=results or local["results"],
        )
        self.token = token if token is not None else runner.default_token()
        self.checkpoints_dir = (
            Path(checkpoints_dir)
            if checkpoints_dir is not None
            else stack.StackConfig.from_env().home / "checkpoints"
        )
        self._channels: dict[str, grpc.Channel] = {}

    def __repr__(self) -> str:
        a = self.addresses
        return f"Client(results={a.results!r}, pruning={a.pruning!r}, eval={a.eval!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channels."""
        for chan in self._channels.values():
            chan.close()
        self._channels.clear()

    def _channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            address = dict(self.addresses.items())[service]
            self._channels[service] = sync_channel(address, self.token)
        return self._channels[service]

    @property
    def _results(self) -> results_pb2_grpc.ResultsServiceStub:
        return results_pb2_grpc.ResultsServiceStub(self._channel("results"))

    # -- jobs ----------------------------------------------------------------------------------

    def prune(
        self,
        spec: pruning_pb2.PruneSpec | Mapping[str, Any],
        *,
        request_id: str | None = None,
        experiment: str = "",
    ) -> JobHandle:
        """Submits a prune job; the same ``request_id`` returns the same job.

        Args:
            spec: A PruneSpec or its dict (``{"model": "reference:tiny-llama", "ratio": 0.2,
                "method": "taylor", ...}``).
            request_id: Makes the call idempotent (default: a fresh id).
            experiment: The experiment the run is recorded under.
        """
        request = pruning_pb2.CreatePruneJobRequest(
            request_id=request_id or f"sdk-{uuid.uuid4().hex}",
            spec=prune_spec(spec),
            experiment=experiment,
        )
        return self._create(PRUNE_JOBS, "pruning", request)

    def evaluate(
        self,
        spec: eval_pb2.EvalSpec | Mapping[str, Any],
        *,
        request_id: str | None = None,
        experiment: str = "",
    ) -> JobHandle:
        """Submits an eval job (of a checkpoint_id or a model); see :meth:`prune`."""
        request = eval_pb2.CreateEvalJobRequest(
            request_id=request_id or f"sdk-{uuid.uuid4().hex}",
            spec=eval_spec(spec),
            experiment=experiment,
        )
        return self._create(EVAL_JOBS, "eval", request)

    def upload_tasks(self, folder: str | Path) -> eval_pb2.TaskSource:
        """Sends a local folder of task YAML and data to the EvalService as content.

        Returns:
            The stored source: put its ``name`` in an EvalSpec's ``task_sources``; ``tasks``
            lists the task names it defines.
        """
        source = read_task_folder(Path(folder).expanduser().resolve())
        stub = eval_pb2_grpc.EvalServiceStub(self._channel("eval"))
        request = eval_pb2.CreateTaskSourceRequest(task_source=source)
        return _call(stub.CreateTaskSource, request).task_source

    def _create(self, api: JobApi, service: str, request: Any) -> JobHandle:
        stub = api.stub(self._channel(service))
        return JobHandle(api, stub, _call(api.create(stub), request).job)

    def job(self, name: str) -> JobHandle:
        """A handle on an existing job by name (``pruneJobs/...`` or ``evalJobs/...``)."""
        api, service = (
            (PRUNE_JOBS, "pruning") if name.startswith("pruneJobs/") else (EVAL_JOBS, "eval")
        )
        stub = api.stub(self._channel(service))
        return JobHandle(api, stub, _call(api.get(stub), api.get_request(name=name)).job)

    def jobs(self, kind: str = "prune", experiment: str = "") -> list[JobHandle]:
        """Every job of one kind (``prune`` or ``eval``), newest first."""
        api, service = (PRUNE_JOBS, "pruning") if kind == "prune" else (EVAL_JOBS, "eval")
        stub = api.stub(self._channel(service))
        request = api.list_request(page_size=1000, experiment=experiment)
        return [
            JobHandle(api, stub, job)
            for response in read_pages(lambda page: _call(api.list(stub), page), request)
            for job in response.jobs
        ]

    def cancel(self, experiment: str) -> list[str]:
        """Cancels the queued and running jobs of ``experiment``; returns their names."""
        names = []
        for kind in ("eval", "prune"):
            for handle in self.jobs(kind, experiment):
                if handle.job.status.state in runner.ACTIVE:
                    handle.cancel()
                    names.append(handle.name)
        return names

    # -- experiments ---------------------------------------------------------------------------

    def run(
        self,
        experiment: str | Path | Mapping[str, Any],
        *,
        display: runner.Display | None = None,
        reconnect_timeout: float = 120.0,
    ) -> runner.RunOutcome:
        """Does what ``greenprune run`` does: runs what is not recorded yet, and waits.

        Args:
            experiment: An experiment file, or its content as a dict.
            display: Receives progress (see :class:`greenprune.client.runner.Display`).
            reconnect_timeout: How long to wait for a service that went away.

        Returns:
            The outcome; ``outcome.ok`` says whether every step is done. The results table is
            :meth:`report` (``report_rows``), read from the ResultsService. The model cards of
            the experiment's checkpoints on this machine are rewritten with their verdicts.
        """
        loaded = self._load(experiment)
        addresses = runner.resolve_addresses(loaded.experiment, dict(self.addresses.items()))
        plan = plan_experiment(loaded)
        work = runner.Runner(plan, addresses, self.token, display, reconnect_timeout)
        try:
            outcome = _run_coroutine(work.run())
        except runner.ServiceUnavailableError as exc:
            raise _received(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        self.refresh_cards(plan.experiment)
        return outcome

    def refresh_cards(self, experiment: str) -> list[Path]:
        """Rewrites the model cards of the experiment's checkpoints that are on this machine.

        Each ``README.md`` gets the accuracy and energy verdicts the ResultsService recorded
        for its checkpoint (``greenprune checkpoint card ID`` does one). :meth:`run` calls it
        when the experiment ends.

        Returns:
            The cards written.
        """
        from greenprune.client.cards import refresh_cards

        return refresh_cards(self, experiment)

    @staticmethod
    def _load(experiment: str | Path | Mapping[str, Any]) -> LoadedExperiment:
        if isinstance(experiment, Mapping):
            path = Path.cwd() / "experiment.yaml"
            text = yaml.safe_dump(dict(experiment), sort_keys=False)
            return LoadedExperiment(parse_experiment(text, path), path)
        return load_experiment(experiment)

    # -- results -------------------------------------------------------------------------------

    def results(
        self, view: str | int = "runs", *, experiment: str = "", model: str = "", task: str = ""
    ) -> Any:
        """A view of the ResultsService as a pandas DataFrame (read from its Parquet export).

        Args:
            view: ``runs``, ``accuracy_vs_sparsity``, ``energy_vs_sparsity``, ``pareto_front``,
                ``task_breakdown``, ``experiments``, ``energy_components``, ``layers``,
                ``prune_runs``, ... (the ``View`` enum without its prefix).
            experiment: Only this experiment's rows (empty: all).
            model: Only this model's rows (empty: all).
            task: Only this task's rows (empty: all).
        """
        import pandas as pd

        request = results_pb2.ExportViewRequest(
            view=_view(view),
            filter=results_pb2.ViewFilter(experiment=experiment, model=model, task=task),
            format=results_pb2.EXPORT_FORMAT_PARQUET,
        )
        pages = read_pages(lambda r: _call(self._results.ExportView, r, VIEW_TIMEOUT_S), request)
        return pd.read_parquet(io.BytesIO(b"".join(page.data for page in pages)))

    def report_rows(self, experiment: str = "") -> list[report.ResultRow]:
        """The rows of ``greenprune report``: one per configuration and task.

        They are the ``task_breakdown`` view's headline rows, with the changes against the
        baseline.
        """
        frame = self.results("task_breakdown", experiment=experiment)
        return report.rows_from_view(list(frame.columns), frame.itertuples(index=False))

    def report(self, experiment: str = "") -> Any:
        """``greenprune report`` as a DataFrame (the columns of ``--format csv``)."""
        import pandas as pd

        rows = self.report_rows(experiment)
        return pd.DataFrame(report.to_records(rows), columns=list(report.EXPORTED))

    def figures(self, experiment: str = "") -> dict[str, Any]:
        """The experiment's figures, drawn by the app's chart code (``greenprune report --html``).

        Returns:
            :class:`greenprune.client.figures.Figure` by name (``tradeoff``,
            ``accuracy_change``, ``energy_change``), each with its Altair ``chart``, ``caption``,
            ``energy_method``, and ``svg()`` / ``png()``.
        """
        from greenprune.client.figures import FIGURE_VIEWS, build_figures

        return build_figures(
            {name: self.results(name, experiment=experiment) for name in FIGURE_VIEWS}
        )

    def versions(self, experiment: str) -> dict[str, list[str]]:
        """The library versions the experiment's prune and eval runs recorded, by library."""
        found: dict[str, set[str]] = {}
        for rpc, request in (
            (
                self._results.ListPruneRuns,
                results_pb2.ListPruneRunsRequest(experiment=experiment, page_size=1000),
            ),
            (
                self._results.ListEvalRuns,
                results_pb2.ListEvalRunsRequest(experiment=experiment, page_size=1000),
            ),
        ):
            for response in read_pages(lambda page, rpc=rpc: _call(rpc, page), request):
                for run in response.runs:
                    versions = run.result.versions if hasattr(run.result, "versions") else {}
                    for name, version in {**versions, **getattr(run, "versions", {})}.items():
                        found.setdefault(name, set()).add(version)
        return {name: sorted(values) for name, values in sorted(found.items())}

    def prune_run(self, request_id: str) -> Any:
        """The recorded PruneRun of a prune job's request_id."""
        return _call(
            self._results.GetPruneRun, results_pb2.GetPruneRunRequest(request_id=request_id)
        ).run

    def eval_run(self, request_id: str) -> Any:
        """The recorded EvalRun with this request_id (one per task)."""
        return _call(
            self._results.GetEvalRun, results_pb2.GetEvalRunRequest(request_id=request_id)
        ).run

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, checkpoint_id: str) -> Checkpoint:
        """A checkpoint's manifest, and its folder when it is on this machine."""
        import json

        stub = pruning_pb2_grpc.PruningServiceStub(self._channel("pruning"))
        response = _call(
            stub.GetCheckpoint, pruning_pb2.GetCheckpointRequest(checkpoint_id=checkpoint_id)
        )
        manifest = json.loads(response.manifest_json)
        folder = self.checkpoints_dir / checkpoint_id
        path = folder if (folder / MANIFEST_NAME).is_file() else None
        return Checkpoint(checkpoint_id, manifest, path)
