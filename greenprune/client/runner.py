"""Runs an experiment's plan: submits what is not recorded yet, and waits for it.

A step already recorded in the ResultsService is skipped; the rest are submitted (a request_id
whose last job failed gets a new attempt on the server). All prune steps finish before any eval
step is submitted, so pruning never overlaps a metered eval window. Stopping the runner (Ctrl-C)
only stops the waiting: the jobs keep running in the services, and running the same file again
picks up where things are. The plan itself is :mod:`greenprune.client.plan`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client.plan import EvalStep, Plan, ProfileStep, PruneStep, Step
from greenprune.client.preflight import check_steps, upload_task_sources
from greenprune.client.spec import Experiment
from greenprune.core.errors import is_retryable
from greenprune.rpc.client import channel, health_status
from greenprune.rpc.job_api import EVAL_JOBS, PRUNE_JOBS, JobApi

T = TypeVar("T")

RPC_TIMEOUT_S = 30.0
VIEW_TIMEOUT_S = 120.0
"""The deadline of a view's export: its first page computes the view over the whole store."""
TERMINAL = frozenset(
    {jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED}
)
ACTIVE = frozenset({jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING})


# -- where the services are ---------------------------------------------------------------------


@dataclass(frozen=True)
class Addresses:
    """The addresses of the three services."""

    pruning: str
    eval: str
    results: str

    def items(self) -> list[tuple[str, str]]:
        """Returns ``(service, address)`` pairs."""
        return [("results", self.results), ("pruning", self.pruning), ("eval", self.eval)]


def resolve_addresses(experiment: Experiment, local: dict[str, str]) -> Addresses:
    """The file's addresses, else the local stack's (``local``, from :mod:`.stack`)."""
    services = experiment.services
    return Addresses(
        pruning=services.pruning or local["pruning"],
        eval=services.eval or local["eval"],
        results=services.results or local["results"],
    )


def default_token() -> str | None:
    """The bearer token from ``GREENPRUNE_TOKEN``, if set."""
    return os.environ.get("GREENPRUNE_TOKEN") or None


# -- running -------------------------------------------------------------------------------------


class ServiceUnavailableError(RuntimeError):
    """A service could not be reached (before the run, or for too long during it)."""


class Display(Protocol):
    """Receives what the runner does, to show it (see :class:`ProgressDisplay`)."""

    def planned(self, plan: Plan, recorded: set[str]) -> None:
        """Called once with the plan and the request_ids already recorded."""

    def started(self, step: Step) -> None:
        """Called when a step's job is submitted."""

    def updated(self, step: Step, stage: str, fraction: float) -> None:
        """Called when a step's job reports progress."""

    def finished(self, step: Step, outcome: StepOutcome) -> None:
        """Called when a step is done, failed or skipped."""


class NullDisplay:
    """A display that shows nothing."""

    def planned(self, plan: Plan, recorded: set[str]) -> None:  # noqa: D102
        pass

    def started(self, step: Step) -> None:  # noqa: D102
        pass

    def updated(self, step: Step, stage: str, fraction: float) -> None:  # noqa: D102
        pass

    def finished(self, step: Step, outcome: StepOutcome) -> None:  # noqa: D102
        pass


RECORDED, SUCCEEDED, FAILED, SKIPPED = "recorded", "succeeded", "failed", "skipped"


@dataclass
class StepOutcome:
    """How a step ended.

    Attributes:
        state: ``recorded`` (done before), ``succeeded``, ``failed`` or ``skipped`` (its prune
            step failed).
        message: Why it failed or was skipped.
        job_name: The job that ran it, when one was submitted.
        run: The PruneRun or EvalRun the ResultsService holds, when done.
    """

    state: str
    message: str = ""
    job_name: str = ""
    run: Any = None

    @property
    def ok(self) -> bool:
        """Whether the step is done."""
        return self.state in (RECORDED, SUCCEEDED)


@dataclass
class RunOutcome:
    """What a run did.

    Attributes:
        plan: The plan.
        outcomes: The outcome of every step, by request_id.
        submitted: How many jobs were submitted (or re-attached to) this time.
    """

    plan: Plan
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    submitted: int = 0

    @property
    def failures(self) -> list[tuple[Step, StepOutcome]]:
        """The failed steps and their outcomes (skipped ones are left out)."""
        return [
            (step, self.outcomes[step.request_id])
            for step in self.plan.steps
            if step.request_id in self.outcomes and self.outcomes[step.request_id].state == FAILED
        ]

    @property
    def ok(self) -> bool:
        """Whether every step is done."""
        return all(
            self.outcomes.get(step.request_id, StepOutcome(FAILED)).ok for step in self.plan.steps
        )

    @property
    def evaluated(self) -> int:
        """How many eval steps are done (the results table has their rows)."""
        return sum(
            1
            for step in self.plan.eval_steps
            if step.request_id in self.outcomes and self.outcomes[step.request_id].ok
        )


class _Service:
    """Channels to one service: one shared channel, replaced (not closed) after a disconnect.

    A replaced channel is kept open until the end, so calls still running on it are not cut;
    a fresh channel dials at once instead of waiting out gRPC's reconnect backoff.
    """

    def __init__(self, name: str, address: str, token: str | None) -> None:
        self.name, self.address, self._token = name, address, token
        self._channels: list[grpc.aio.Channel] = []

    @property
    def generation(self) -> int:
        """How many channels were opened so far."""
        return len(self._channels)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The current channel, opened on first use."""
        if not self._channels:
            self._channels.append(channel(self.address, self._token))
        return self._channels[-1]

    def renew(self, seen_generation: int) -> None:
        """Opens a fresh channel unless one was opened since ``seen_generation``."""
        if self.generation <= seen_generation:
            self._channels.append(channel(self.address, self._token))

    async def close(self) -> None:
        """Closes every channel."""
        for chan in self._channels:
            await chan.close()
        self._channels.clear()


class Runner:
    """Runs a plan against the services.

    Args:
        plan: What to run.
        addresses: Where the services are.
        token: The bearer token, if the stack uses one.
        display: Receives progress.
        reconnect_timeout: How long to wait for a service that went away during the run before
            giving up on its steps.
    """

    def __init__(
        self,
        plan: Plan,
        addresses: Addresses,
        token: str | None = None,
        display: Display | None = None,
        reconnect_timeout: float = 120.0,
    ) -> None:
        self._plan = plan
        self._addresses = addresses
        self._display: Display = display or NullDisplay()
        self._reconnect_timeout = reconnect_timeout
        self._pruning = _Service("pruning", addresses.pruning, token)
        self._eval = _Service("eval", addresses.eval, token)
        self._results = _Service("results", addresses.results, token)
        self.outcome = RunOutcome(plan)
        self._task_sources: list[str] = []

    async def check_reachable(
        self, services: Sequence[str] = ("results", "pruning", "eval")
    ) -> None:
        """Raises ServiceUnavailableError naming every service that is not SERVING."""
        by_name = {"results": self._results, "pruning": self._pruning, "eval": self._eval}
        statuses = await asyncio.gather(*(health_status(by_name[n].address) for n in services))
        down = [
            f"{name} service at {by_name[name].address}: {status}"
            for name, status in zip(services, statuses, strict=True)
            if status != "SERVING"
        ]
        if down:
            raise ServiceUnavailableError(
                "not serving: " + "; ".join(down) + ". Start the local stack with "
                "`greenprune up`, or set the services' addresses in the experiment file."
            )

    async def recorded(self) -> dict[str, Any]:
        """Returns the runs already recorded for the plan's steps, by request_id."""
        pairs = await _bounded_gather(
            [self._prune_run(s.request_id) for s in self._plan.prune_steps]
            + [self._eval_run(s.run_id) for s in self._plan.eval_steps]
            + [self._profile_run(s.request_id) for s in self._plan.profile_steps]
        )
        ids = [s.request_id for s in self._plan.steps]
        return {rid: run for rid, run in zip(ids, pairs, strict=True) if run is not None}

    async def _prune_run(self, request_id: str) -> Any:
        stub = results_pb2_grpc.ResultsServiceStub(self._results.channel)
        request = results_pb2.GetPruneRunRequest(request_id=request_id)
        found = await self._lookup(stub.GetPruneRun, request)
        return found.run if found is not None else None

    async def _eval_run(self, run_id: str) -> Any:
        stub = results_pb2_grpc.ResultsServiceStub(self._results.channel)
        found = await self._lookup(
            stub.GetEvalRun, results_pb2.GetEvalRunRequest(request_id=run_id)
        )
        return found.run if found is not None else None

    async def _profile_run(self, request_id: str) -> Any:
        stub = results_pb2_grpc.ResultsServiceStub(self._results.channel)
        found = await self._lookup(
            stub.GetProfileRun, results_pb2.GetProfileRunRequest(request_id=request_id)
        )
        return found.run if found is not None else None

    async def _lookup(self, rpc: Callable[..., Awaitable[T]], request: Any) -> T | None:
        try:
            return await rpc(request, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def run(self) -> RunOutcome:
        """Checks the services, skips recorded steps, runs the rest and waits for them."""
        try:
            await self.check_reachable()
            recorded = await self.recorded()
            for step in self._plan.steps:
                if step.request_id in recorded:
                    self.outcome.outcomes[step.request_id] = StepOutcome(
                        RECORDED, run=recorded[step.request_id]
                    )
            await self.preflight([s for s in self._plan.steps if s.request_id not in recorded])
            self._display.planned(self._plan, set(recorded))
            for step in self._plan.steps:
                if step.request_id in recorded:
                    self._display.finished(step, self.outcome.outcomes[step.request_id])
            # Every prune step ends before an eval step starts: pruning never overlaps a
            # metered eval window.
            await asyncio.gather(
                *(self._prune(s) for s in self._plan.prune_steps if s.request_id not in recorded)
            )
            await asyncio.gather(
                *(self._evaluate(s) for s in self._plan.eval_steps if s.request_id not in recorded)
            )
            for profile in self._plan.profile_steps:
                if profile.request_id not in recorded:
                    await self._profile(profile)
            return self.outcome
        finally:
            await self.close()

    async def preflight(self, pending: Sequence[Step]) -> None:
        """Sends the task folders and has the services check every pending step.

        Raises:
            PlanRefusedError: A folder or a step was refused; nothing was submitted.
        """
        if self._plan.task_folders and any(isinstance(s, EvalStep) for s in pending):
            self._task_sources = await upload_task_sources(
                self._eval.channel, self._plan.task_folders, RPC_TIMEOUT_S
            )
        await check_steps(
            pending, self._pruning.channel, self._eval.channel, self._task_sources, RPC_TIMEOUT_S
        )

    async def close(self) -> None:
        """Closes the channels."""
        for service in (self._pruning, self._eval, self._results):
            await service.close()

    async def _prune(self, step: PruneStep) -> None:
        request = pruning_pb2.CreatePruneJobRequest(
            request_id=step.request_id, spec=step.spec, experiment=self._plan.experiment
        )
        await self._run_and_record(
            step, self._pruning, PRUNE_JOBS, request, "prune", step.request_id, self._prune_run
        )

    async def _evaluate(self, step: EvalStep) -> None:
        prune = self.outcome.outcomes.get(step.prune.request_id)
        if prune is None or not prune.ok:
            self._conclude(step, StepOutcome(SKIPPED, f"{step.prune.label} did not succeed"))
            return
        spec = eval_pb2.EvalSpec()
        spec.CopyFrom(step.spec)
        spec.checkpoint_id = prune.run.result.checkpoint_id
        spec.task_sources.extend(self._task_sources)
        request = eval_pb2.CreateEvalJobRequest(
            request_id=step.request_id, spec=spec, experiment=self._plan.experiment
        )
        await self._run_and_record(
            step, self._eval, EVAL_JOBS, request, "eval", step.run_id, self._eval_run
        )

    async def _profile(self, step: ProfileStep) -> None:
        prunes = [self.outcome.outcomes.get(s.request_id) for s in step.prunes]
        done = [o for o in prunes if o is not None and o.ok]
        if len(done) < 2:
            self._conclude(step, StepOutcome(SKIPPED, "fewer than two checkpoints to compare"))
            return
        spec = eval_pb2.EvalSpec()
        spec.CopyFrom(step.spec)
        spec.profile.checkpoint_ids.extend(o.run.result.checkpoint_id for o in done)
        request = eval_pb2.CreateEvalJobRequest(
            request_id=step.request_id, spec=spec, experiment=self._plan.experiment
        )
        await self._run_and_record(
            step, self._eval, EVAL_JOBS, request, "profile", step.request_id, self._profile_run
        )

    async def _run_and_record(
        self,
        step: Step,
        service: _Service,
        api: JobApi,
        request: Any,
        kind: str,
        run_id: str,
        fetch: Callable[[str], Awaitable[Any]],
    ) -> None:
        """Runs the step's job, then reads the run it recorded; a missing record fails the step."""
        outcome = await self._run_job(step, service, api, request)
        if outcome.state == SUCCEEDED:
            outcome.run = await fetch(run_id)
            if outcome.run is None:
                outcome.state = FAILED
                outcome.message = f"{kind} run {run_id} is not in the results store"
        self._conclude(step, outcome)

    def _conclude(self, step: Step, outcome: StepOutcome) -> None:
        self.outcome.outcomes[step.request_id] = outcome
        self._display.finished(step, outcome)

    async def _run_job(
        self, step: Step, service: _Service, api: JobApi, request: Any
    ) -> StepOutcome:
        """Creates the step's job (or gets the existing one) and follows it to its end."""
        try:
            response = await self._retrying(
                service,
                step,
                lambda chan: api.create(api.stub(chan))(request, timeout=RPC_TIMEOUT_S),
                busy_ok=True,
            )
        except ServiceUnavailableError as exc:
            return StepOutcome(FAILED, str(exc))
        except grpc.aio.AioRpcError as exc:
            return StepOutcome(
                FAILED, f"the {service.name} service refused the job: {_describe(exc)}"
            )
        job = response.job
        self.outcome.submitted += 1
        self._display.started(step)
        self._display.updated(step, job.status.stage, job.status.progress)
        try:
            job = await self._follow(step, service, api, job)
        except ServiceUnavailableError as exc:
            return StepOutcome(FAILED, str(exc), job_name=job.name)
        state = job.status.state
        if state == jobs_pb2.JOB_STATE_SUCCEEDED:
            return StepOutcome(SUCCEEDED, job_name=job.name)
        reason = job.status.error.message or jobs_pb2.JobState.Name(state)
        return StepOutcome(FAILED, reason, job_name=job.name)

    async def _retrying(
        self,
        service: _Service,
        step: Step,
        call: Callable[[grpc.aio.Channel], Awaitable[T]],
        *,
        busy_ok: bool = False,
    ) -> T:
        """Runs ``call`` until it succeeds; other errors than the retried ones are raised.

        Retries while the service is unreachable (up to the reconnect timeout) and, with
        ``busy_ok``, while its job queue is full.
        """
        lost = _Outage(self._reconnect_timeout)
        while True:
            generation = service.generation
            try:
                return await call(service.channel)
            except grpc.aio.AioRpcError as exc:
                busy = busy_ok and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                if not busy and not is_retryable(exc):
                    raise
                if not busy:
                    lost.check(service, exc)
                self._display.updated(step, f"waiting for the {service.name} service", 0.0)
                service.renew(generation)
                await asyncio.sleep(1.0 if not busy else 5.0)

    async def _follow(self, step: Step, service: _Service, api: JobApi, job: Any) -> Any:
        """Follows a job to a terminal state: the watch stream, polling after a disconnect."""
        lost = _Outage(self._reconnect_timeout)
        while job.status.state not in TERMINAL:
            generation = service.generation
            try:
                stub = api.stub(service.channel)
                async for message in api.watch(stub)(api.watch_request(name=job.name)):
                    job = message.job
                    lost.reset()
                    self._display.updated(step, job.status.stage, job.status.progress)
                    if job.status.state in TERMINAL:
                        return job
                response = await api.get(stub)(
                    api.get_request(name=job.name), timeout=RPC_TIMEOUT_S
                )
                job = response.job
            except grpc.aio.AioRpcError as exc:
                if not is_retryable(exc):
                    raise ServiceUnavailableError(
                        f"the {service.name} service at {service.address}: {_describe(exc)}"
                    ) from None
                lost.check(service, exc, job.name)
                self._display.updated(
                    step, f"waiting for the {service.name} service", job.status.progress
                )
                service.renew(generation)
                await asyncio.sleep(1.0)
        return job


class _Outage:
    """Measures how long a service has been unreachable, and gives up after a timeout."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._since: float | None = None

    def reset(self) -> None:
        self._since = None

    def check(self, service: _Service, exc: grpc.aio.AioRpcError, job_name: str = "") -> None:
        """Raises ServiceUnavailableError once the outage is longer than the timeout."""
        now = time.monotonic()
        self._since = now if self._since is None else self._since
        if now - self._since > self._timeout:
            kept = f"; the job {job_name} is kept by the service" if job_name else ""
            raise ServiceUnavailableError(
                f"lost the {service.name} service at {service.address} for more than "
                f"{self._timeout:.0f} s ({_describe(exc)}){kept}: run the same file again later"
            )


def _describe(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


async def _bounded_gather(coroutines: Sequence[Awaitable[T]], limit: int = 16) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Awaitable[T]) -> T:
        async with semaphore:
            return await coroutine

    return list(await asyncio.gather(*(one(c) for c in coroutines)))


async def lookup_recorded(plan: Plan, addresses: Addresses, token: str | None) -> set[str] | None:
    """Returns the request_ids of the plan already recorded, or None when unreachable."""
    runner = Runner(plan, addresses, token)
    try:
        if await health_status(addresses.results) != "SERVING":
            return None
        return set(await runner.recorded())
    except grpc.aio.AioRpcError:
        return None
    finally:
        await runner.close()


async def check_plan(
    plan: Plan, addresses: Addresses, token: str | None, recorded: set[str]
) -> str | None:
    """Has the services check the steps not yet recorded, as ``run`` does before submitting.

    Returns:
        None when every step passed, otherwise why the check could not run.

    Raises:
        PlanRefusedError: The services refused steps.
    """
    runner = Runner(plan, addresses, token)
    try:
        await runner.check_reachable(("pruning", "eval"))
        await runner.preflight([s for s in plan.steps if s.request_id not in recorded])
    except ServiceUnavailableError as exc:
        return str(exc)
    except grpc.aio.AioRpcError as exc:
        return _describe(exc)
    finally:
        await runner.close()
    return None


# -- job listings (status) ----------------------------------------------------------------------


async def job_counts(
    address: str, api: JobApi, token: str | None, experiment: str = ""
) -> dict[str, int]:
    """Counts the jobs of one job service by state name ("QUEUED", ...)."""
    counts: dict[str, int] = {}
    async for job in _jobs(address, api, token, experiment):
        name = jobs_pb2.JobState.Name(job.status.state).removeprefix("JOB_STATE_")
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _jobs(address: str, api: JobApi, token: str | None, experiment: str = "") -> Any:
    async with channel(address, token) as chan:
        rpc = api.list(api.stub(chan))
        page = ""
        while True:
            response = await rpc(
                api.list_request(page_size=1000, page_token=page, experiment=experiment),
                timeout=RPC_TIMEOUT_S,
            )
            for job in response.jobs:
                yield job
            page = response.next_page_token
            if not page:
                return
