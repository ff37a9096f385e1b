"""Runs the job runner's jobs on a Ray cluster instead of in local child processes.

The job table stays where it is (the service's SQLite file, the source of truth); only the
work moves. Each job runs in a Ray *actor*, a :class:`~greenprune.core.jobs.protocol.WorkerProcess`
that loads the worker and runs its warm-up hook when it is created, then runs jobs as a local
child would. The actor method is a streaming generator of the worker protocol's messages, so
the runner treats both backends alike.

Actors rather than plain tasks: a task that asks for a GPU gets a fresh worker process, which
would pay the imports of torch, transformers and lm-eval (seconds) for every job. As with the
local backend, a lane listed in ``warm_lanes`` keeps a *spare* actor warmed while idle; by
default each actor runs one job and is killed (a fresh process per job, memory freed), or with
``reuse_actors`` it goes back to an idle pool for the next job of its lane.

Where a job runs is named in its result: the hardware line of every energy report gains the
Ray node id, the host name and the devices Ray made visible (``CUDA_VISIBLE_DEVICES``). A job
whose checkpoint or model folder its node cannot see fails naming the path and the node: the
checkpoints and models roots must be shared storage seen by every node.

Cancel kills the job's actor (``ray.kill``; Ray refuses ``ray.cancel(force=True)`` for actor
tasks), which ends the worker process at once. Actors are owned by the service's Ray driver,
so a service that dies takes its running jobs with it; on restart the runner marks them
interrupted, as with local children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.core.errors import FailedPreconditionError, NotFoundError
from greenprune.core.jobs.backend import Backend, Execution
from greenprune.core.jobs.local_backend import LocalBackend
from greenprune.core.jobs.protocol import PROGRESS, Message, Progress, WorkerProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How a service uses Ray.

    Args:
        address: ``auto`` (a running cluster on this machine), ``ray://head:10001`` (a remote
            cluster through Ray Client), or empty to attach to the Ray already initialised in
            this process or else start a local instance.
        num_cpus: CPUs each job of a non-CUDA lane asks for.
        num_gpus: GPUs each job of a CUDA lane (``cuda``, ``cuda:N``) asks for.
        max_concurrent: The most jobs of one lane in flight at once; 0 means as many as the
            cluster's resources allow when the runner starts (at least 1).
        lane_resources: ``device``: CUDA lanes ask for GPUs, other lanes for CPUs; ``gpu``:
            every job asks for ``num_gpus`` (prune jobs on GPU nodes, or a simulation with
            logical GPUs); ``cpu``: every job asks for ``num_cpus``.
        reuse_actors: Keep a job's actor for the lane's next job instead of a fresh process
            per job (faster for short jobs; memory is not returned between jobs).
        local_num_cpus: CPUs of a local instance this process starts (None: all).
        local_num_gpus: GPUs of a local instance this process starts (None: detected); logical
            GPUs work on a CPU machine, for simulations.
    """

    address: str = ""
    num_cpus: float = 1.0
    num_gpus: float = 1.0
    max_concurrent: int = 0
    lane_resources: str = "device"
    reuse_actors: bool = False
    local_num_cpus: int | None = None
    local_num_gpus: int | None = None
    namespace: str = "greenprune"


def backend_from_settings(settings: Any) -> Backend:
    """The backend a service's settings ask for: Ray actors or local child processes.

    Either reuses a job's process for its lane's next job with ``reuse_job_process``.
    """
    if getattr(settings, "backend", "local") != "ray":
        return LocalBackend(reuse=settings.reuse_job_process)
    return RayBackend(
        RayOptions(
            address=settings.ray_address,
            num_cpus=settings.ray_num_cpus,
            num_gpus=settings.ray_num_gpus,
            max_concurrent=settings.ray_max_concurrent,
            lane_resources=settings.ray_lane_resources,
            reuse_actors=settings.reuse_job_process,
            local_num_cpus=settings.ray_local_num_cpus,
            local_num_gpus=settings.ray_local_num_gpus,
        )
    )


def is_cuda_lane(lane: str) -> bool:
    """Whether a lane names a CUDA device."""
    return lane == "cuda" or lane.startswith("cuda:")


def where() -> dict[str, str]:
    """The node and devices of the calling Ray worker process."""
    node = ""
    with contextlib.suppress(Exception):
        import ray

        node = ray.get_runtime_context().get_node_id()
    return {
        "node_id": node,
        "host": socket.gethostname(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "pid": str(os.getpid()),
    }


def describe_place(place: dict[str, str]) -> str:
    """``ray node <id> (host <name>), CUDA_VISIBLE_DEVICES=<ids>``."""
    node = place.get("node_id") or "?"
    devices = place.get("cuda_visible_devices") or "none"
    return f"ray node {node[:16]} (host {place.get('host', '?')}), CUDA_VISIBLE_DEVICES={devices}"


def annotate_hardware(data: Any, note: str) -> Any:
    """Appends ``note`` to every ``hardware`` string in a result's nested dicts, in place."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "hardware" and isinstance(value, str):
                data[key] = f"{value}; {note}" if value else note
            else:
                annotate_hardware(value, note)
    elif isinstance(data, list):
        for item in data:
            annotate_hardware(item, note)
    return data


def check_visible(spec: dict[str, Any], context: dict[str, Any], node: str) -> None:
    """Fails naming the path and node when a job's checkpoints root or checkpoint is not here.

    The checkpoints root comes from the service's settings; on a cluster it must be shared
    storage mounted at the same path on every node (a prune job would otherwise write its
    checkpoint where no eval job can read it). The root itself is required where the service
    has it (``ROOT_ON_SERVICE`` in the context), each checkpoint the spec names always.

    Raises:
        NotFoundError: Naming the missing path and the node.
    """
    root = context.get("checkpoints_dir")
    if not root:
        return
    wanted = [("the checkpoints root", Path(root))] if context.get(ROOT_ON_SERVICE) else []
    ids = [spec["checkpoint_id"]] if spec.get("checkpoint_id") else []
    ids += list((spec.get("profile") or {}).get("checkpoint_ids") or [])
    wanted += [(f"checkpoint {c!r}", Path(root) / c) for c in ids]
    for what, path in wanted:
        if not path.exists():
            raise NotFoundError(
                f"{what} is not visible at {path} on {node}: the checkpoints root must be"
                " shared storage mounted at the same path on every Ray node"
            )


ROOT_ON_SERVICE = "checkpoints_root_on_service"


class JobActor(WorkerProcess):
    """The Ray actor a job runs in (made remote with the lane's resources by the backend).

    Around the worker it checks that the job's checkpoints are visible on this node, and it
    names the node in every hardware line of the result.
    """

    _node = ""

    def ready(self) -> dict[str, str]:
        """Answers once the actor is warm, with where it runs."""
        return where()

    def work(self, spec: dict[str, Any], context: dict[str, Any], progress: Progress) -> Any:
        """Runs the worker where its checkpoints are visible; the result names the node."""
        check_visible(spec, context, self._node)
        return annotate_hardware(super().work(spec, context, progress), self._node)

    def run(self, spec: dict[str, Any], context: dict[str, Any]) -> Any:
        """Runs one job, yielding progress messages and then the result or the error."""
        self._node = describe_place(where())
        context = dict(context)
        workdir = Path(context["workdir"])
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError:  # the service's state folder is not writable here: use a local one
            workdir = Path(tempfile.mkdtemp(prefix=f"greenprune-{context.get('job_id', '')}-"))
            context["workdir"] = str(workdir)
        messages: queue.Queue[Message] = queue.Queue()
        threading.Thread(
            target=self.run_job,
            args=(spec, context, messages.put),
            name="greenprune-job",
            daemon=True,
        ).start()
        while True:
            batch = [messages.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(messages.get_nowait())
            updates = [m for m in batch if m[0] == PROGRESS]
            if updates:  # only the latest progress matters; older ones are skipped
                yield updates[-1]
            final = [m for m in batch if m[0] != PROGRESS]
            if final:
                yield final[0]
                return


class RayExecution(Execution):
    """A job running on an actor: its messages, and how to stop it."""

    def __init__(self, backend: RayBackend, actor: Any, lane: str, stream: Any) -> None:
        self._backend = backend
        self.actor = actor
        self.lane = lane
        self._stream = stream
        self._error = "no reason"

    async def messages(self) -> AsyncIterator[Message]:
        """The job's messages; they end early (without an outcome) when the actor dies."""
        try:
            async for ref in self._stream:
                yield tuple(await ref)
        except Exception as exc:  # noqa: BLE001 - the actor died or was killed
            self._error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"

    async def close(self, reusable: bool) -> None:
        """Keeps the actor for the lane's next job (``reuse_actors``), or kills it."""
        self._backend.release(self, reusable)

    def death(self) -> str:
        """``the Ray actor running the job died (why)``."""
        return f"the Ray actor running the job died ({self._error})"

    def end(self) -> None:
        """Ends the actor's process at once."""
        _kill(self.actor)

    async def kill(self) -> None:
        """Ends the actor's process at once (``ray.kill``)."""
        self.end()


class RayBackend(Backend):
    """Connects to Ray and runs the runner's jobs on actors.

    Args:
        options: The Ray settings.
    """

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._worker = ""
        self._warm: str | None = None
        self._warm_lanes: tuple[str, ...] = ()
        self._remote: Any = None
        self._spares: dict[str, list[Any]] = {}
        self._running: set[RayExecution] = set()
        self._resources: dict[str, float] = {}
        self._started_ray = False

    def bind(self, worker: str, warm: str | None, warm_lanes: tuple[str, ...]) -> None:
        """Sets the worker, its warm-up hook and the lanes that keep a warm actor idle."""
        self._worker, self._warm, self._warm_lanes = worker, warm, warm_lanes

    # -- connection ------------------------------------------------------------------------

    async def start(self, warm_timeout: float) -> None:
        """Connects, and creates a warm actor per warm lane (waiting up to ``warm_timeout``)."""
        await asyncio.to_thread(self.connect)
        for lane in self._warm_lanes:
            self._add_spare(lane)
        lanes = self._warm_lanes
        await asyncio.gather(*(self._await_ready(lane, warm_timeout) for lane in lanes))

    def connect(self) -> None:
        """Attaches to the configured cluster (or starts a local instance); blocking."""
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "namespace": self.options.namespace,
                "log_to_driver": True,
                # Workers import the worker modules from this checkout, like local children.
                "runtime_env": {"env_vars": {"PYTHONPATH": _pythonpath()}},
            }
            if self.options.address:
                try:
                    ray.init(address=self.options.address, **kwargs)
                except (ConnectionError, RuntimeError, TimeoutError) as exc:
                    raise FailedPreconditionError(
                        f"cannot reach the Ray cluster at {self.options.address!r}: {exc}"
                    ) from exc
            else:
                ray.init(
                    address="local",  # never one that someone else started on this machine
                    num_cpus=self.options.local_num_cpus,
                    num_gpus=self.options.local_num_gpus,
                    **kwargs,
                )
                self._started_ray = True
        self._remote = ray.remote(JobActor)
        self._resources = dict(ray.cluster_resources())
        log.info("Ray cluster resources: %s", self._resources)

    def stop(self) -> None:
        """Kills the running jobs' actors and the idle ones."""
        for execution in self._running:
            execution.end()
        for pool in self._spares.values():
            for actor in pool:
                _kill(actor)
        self._spares.clear()

    async def close(self) -> None:
        """Shuts down a local instance this backend started."""
        if self._started_ray:
            import ray

            await asyncio.to_thread(ray.shutdown)

    def resources_of(self, lane: str) -> dict[str, float]:
        """What one job of ``lane`` asks Ray for."""
        gpu = self.options.lane_resources == "gpu" or (
            self.options.lane_resources == "device" and is_cuda_lane(lane)
        )
        if gpu:
            return {"num_cpus": 0.0, "num_gpus": self.options.num_gpus}
        return {"num_cpus": self.options.num_cpus, "num_gpus": 0.0}

    def check(self, lane: str) -> None:
        """Refuses at once a job whose resources the cluster does not have at all.

        Raises:
            FailedPreconditionError: Naming what the job asks for and what the cluster has.
        """
        import ray

        wanted = self.resources_of(lane)
        have = dict(ray.cluster_resources())
        self._resources = have
        for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
            if wanted[key] > 0 and have.get(name, 0.0) < wanted[key]:
                raise FailedPreconditionError(
                    f"the job (lane {lane!r}) asks Ray for {wanted[key]:g} {name} but the Ray"
                    f" cluster has {have.get(name, 0.0):g} {name} in all"
                    f" ({_summary(have)}); it would wait forever"
                )

    def concurrency(self, lane: str) -> int:
        """The most jobs of ``lane`` in flight at once."""
        if self.options.max_concurrent > 0:
            return self.options.max_concurrent
        wanted = self.resources_of(lane)
        key, name = ("num_gpus", "GPU") if wanted["num_gpus"] > 0 else ("num_cpus", "CPU")
        if wanted[key] <= 0:
            return 1
        return max(1, int(self._resources.get(name, 0.0) // wanted[key]))

    # -- actors ------------------------------------------------------------------------------

    def launch(self, lane: str, spec: dict[str, Any], context: dict[str, Any]) -> RayExecution:
        """Starts a job on a warm actor of ``lane``, or on a new one.

        A warm lane that has no idle actor left creates one now, warming while this job runs.
        """
        pool = self._spares.get(lane, [])
        actor = pool.pop(0) if pool else self._new_actor(lane)
        root = context.get("checkpoints_dir")
        context = {**context, ROOT_ON_SERVICE: bool(root and Path(root).is_dir())}
        stream = actor.run.options(num_returns="streaming").remote(spec, context)
        execution = RayExecution(self, actor, lane, stream)
        self._running.add(execution)
        if lane in self._warm_lanes and not self._spares.get(lane):
            self._add_spare(lane)
        return execution

    def release(self, execution: RayExecution, reusable: bool) -> None:
        """After a job: keeps the actor for the lane's next job, or kills it."""
        self._running.discard(execution)
        if reusable and self.options.reuse_actors:
            self._spares.setdefault(execution.lane, []).append(execution.actor)
        else:
            execution.end()

    def _new_actor(self, lane: str) -> Any:
        resources = self.resources_of(lane)
        return self._remote.options(
            num_cpus=resources["num_cpus"],
            num_gpus=resources["num_gpus"],
            max_restarts=0,
            name=None,
        ).remote(self._worker, self._warm, lane)

    def _add_spare(self, lane: str) -> None:
        """Creates a warm actor for ``lane``'s next job."""
        self._spares.setdefault(lane, []).append(self._new_actor(lane))

    async def _await_ready(self, lane: str, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for ``lane``'s idle actors to be warm."""
        actors = self._spares.get(lane, [])
        if not actors:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(a.ready.remote() for a in actors)), max(timeout, 0.001)
            )
        except Exception as exc:  # noqa: BLE001 - a slow or dead spare is replaced later
            log.warning("the warm Ray actors of lane %s are not ready: %s", lane, exc)


def _kill(actor: Any) -> None:
    """Ends an actor's process at once (``ray.kill``; Ray refuses to force-cancel its tasks)."""
    import ray

    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


def _summary(resources: dict[str, float]) -> str:
    keys = ("CPU", "GPU", "memory")
    shown = {k: resources[k] for k in keys if k in resources and k != "memory"}
    return ", ".join(f"{k} {v:g}" for k, v in shown.items()) or "no resources"


def _pythonpath() -> str:
    paths = [p for p in sys.path if p and Path(p).is_dir() and "site-packages" not in p]
    cwd = os.getcwd()
    return os.pathsep.join(dict.fromkeys([cwd, *paths, os.environ.get("PYTHONPATH", "")]))
