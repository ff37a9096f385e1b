"""The campaign's harness: the services it starts, how it sends, and what it records.

:class:`Campaign` starts a ResultsService, a PruningService and an EvalService in this
process (each on port 0 with a bearer token and its own state), sends raw requests to them and
records each request with its verdict (:func:`~bench.adversarial.verdicts.judge`). Every
category module takes a Campaign.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from bench.adversarial.messages import init_int_ranges, message_class
from bench.adversarial.task_folders import plant_task_root
from bench.adversarial.verdicts import ACCEPTED, CLEAN, REFUSE, Answer, Bad, Tally, judge

REPO = Path(__file__).resolve().parents[2]

CATEGORIES: dict[str, str] = {
    "1": "client-chosen code",
    "2": "results store takes anything",
    "3": "spec bounds",
    "4": "lost work",
    "5": "app without token",
    "6": "Health.Watch",
    "7": "INTERNAL vs clean error",
    "8": "experiment file check",
    "9": "library failures say where",
    "bytes": "random bytes",
    "token": "bad tokens",
}

MB = 1024 * 1024
DEADLINE_SECONDS = 20.0
"""How long a request may go unanswered before it is a bad outcome, unless ``--deadline``."""

TOKEN = "adversarial-token"

REFERENCE = "reference:tiny-llama"

PROFILE_CHECKPOINT = "ckpt-adversarial"
"""A checkpoint folder planted with a manifest, so profile specs reach their bounds checks."""


def service_descriptors() -> dict[str, Any]:
    from greenprune.api.eval.v1 import eval_pb2
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.api.results.v1 import results_pb2

    return {
        "results": results_pb2.DESCRIPTOR.services_by_name["ResultsService"],
        "pruning": pruning_pb2.DESCRIPTOR.services_by_name["PruningService"],
        "eval": eval_pb2.DESCRIPTOR.services_by_name["EvalService"],
    }


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def channel_options() -> list[tuple[str, int]]:
    from greenprune.rpc.client import DEFAULT_MAX_MESSAGE_BYTES

    return [
        ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ]


@contextlib.contextmanager
def patched_env(**values: str | None) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_results(state_dir: Path, token: str | None, port: int = 0) -> Any:
    """A ResultsService with its DuckDB file under ``state_dir``, in a background loop."""
    from greenprune.core.settings import ResultsSettings
    from greenprune.rpc.server_thread import ServerThread
    from results_service.server import build

    settings = ResultsSettings(port=port, state_dir=state_dir, token=token, grace_seconds=1.0)
    return ServerThread(lambda: build(settings), settings).start()


def start_worker(kind: str, home: Path, token: str | None, results: str) -> Any:
    """A PruningService or an EvalService (real job workers, no warm process)."""
    from greenprune.core.settings import EvalSettings, PruningSettings
    from greenprune.rpc.server_thread import ServerThread

    common = {
        "port": 0,
        "state_dir": home / kind,
        "token": token,
        "grace_seconds": 1.0,
        "results_address": results,
        "models_root": home / "models",
        "checkpoints_dir": home / "checkpoints",
        "warm_job_process": False,
    }
    if kind == "pruning":
        from pruning_service.server import build as build_pruning

        pruning = PruningSettings(**common)
        return ServerThread(lambda: build_pruning(pruning), pruning).start()
    from eval_service.server import build as build_eval

    evaluation = EvalSettings(**common)  # task roots from GREENPRUNE_EVAL_TASK_ROOTS
    return ServerThread(lambda: build_eval(evaluation), evaluation).start()


class Campaign:
    """Runs the categories against in-process services and tallies every request.

    Args:
        home: A fresh folder for the services' state, task roots and files.
        quick: Smaller counts and strings (a smoke run).
        seed: Seeds the random requests.
        say: Prints progress.
        deadline: Seconds a request may go unanswered before it is a bad outcome (a hang, not
            a refusal); a loaded machine answers later without being broken.
    """

    def __init__(
        self,
        home: Path,
        quick: bool = False,
        seed: int = 0,
        say: Callable[[str], None] = print,
        deadline: float = DEADLINE_SECONDS,
    ) -> None:
        init_int_ranges()
        self.home = home
        self.quick = quick
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.say = say
        self.token = TOKEN
        self.tallies = {key: Tally() for key in CATEGORIES}
        self.bads: list[Bad] = []
        self.notes: list[str] = []
        self.log: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.services = service_descriptors()
        self.servers: dict[str, Any] = {}
        self.channels: dict[str, grpc.Channel] = {}
        self.bare: dict[str, grpc.Channel] = {}
        self.created: list[tuple[str, str]] = []
        self.watch: list[tuple[str, str, str]] = []  # (category, service, job name) to await
        self.big = 64 * 1024 if quick else MB
        self.huge = 64 * 1024 if quick else 10 * MB

    # -- bookkeeping

    def record(self, category: str, request: str, verdict: str, what: str = "") -> None:
        """Counts one request and keeps a bad outcome."""
        with self._lock:
            self.log.append(
                {"category": category, "request": request, "verdict": verdict, "what": what}
            )
            tally = self.tallies[category]
            tally.tried += 1
            if verdict == CLEAN:
                tally.clean += 1
            elif verdict == ACCEPTED:
                tally.accepted += 1
            else:
                tally.bad += 1
                self.bads.append(Bad(category, request, what))

    def note(self, text: str) -> None:
        """Keeps a remark that is not a bad outcome."""
        with self._lock:
            self.notes.append(text)

    # -- setup

    def start(self, kinds: Sequence[str] = ("results", "pruning", "eval")) -> None:
        """Plants the task root and the profile checkpoint, starts the services."""
        self.task_root, self.outside, self.markers = plant_task_root(self.home)
        checkpoint = self.home / "checkpoints" / PROFILE_CHECKPOINT
        checkpoint.mkdir(parents=True)
        (checkpoint / "greenprune.json").write_text("{}")
        roots = json.dumps([str(self.task_root), str(self.home / "tasks-library")])
        with patched_env(GREENPRUNE_EVAL_TASK_ROOTS=roots, GREENPRUNE_EVAL_ALLOW_TASK_CODE=None):
            self.servers["results"] = start_results(self.home / "results", self.token)
            address = self.servers["results"].address
            for kind in kinds:
                if kind != "results":
                    self.servers[kind] = start_worker(kind, self.home, self.token, address)
        from greenprune.rpc.client import sync_channel

        for kind, server in self.servers.items():
            self.channels[kind] = sync_channel(server.address, self.token)
            self.bare[kind] = grpc.insecure_channel(server.address, options=channel_options())

    def stop(self) -> None:
        """Cancels jobs the campaign created, closes channels and stops the services."""
        for service, name in self.created:
            method = "CancelPruneJob" if service == "pruning" else "CancelEvalJob"
            with contextlib.suppress(Exception):
                self.raw(service, method, self._named(service, method, name), timeout=10)
        for chan in [*self.channels.values(), *self.bare.values()]:
            chan.close()
        for kind in ("eval", "pruning", "results"):
            if kind in self.servers:
                with contextlib.suppress(Exception):
                    self.servers[kind].stop()

    # -- calls

    def method(self, service: str, name: str) -> Any:
        """The method descriptor."""
        return self.services[service].methods_by_name[name]

    def has(self, service: str, name: str, request_field: str | None = None) -> bool:
        """Whether a method (and a field of its request) exists in the protos here."""
        found = self.services[service].methods_by_name.get(name)
        if found is None:
            return False
        return request_field is None or request_field in found.input_type.fields_by_name

    def request(self, service: str, method: str, /, **fields: Any) -> Any:
        """A request message of a method."""
        return message_class(self.method(service, method).input_type)(**fields)

    def _named(self, service: str, method: str, name: str) -> Any:
        return self.request(service, method, name=name)

    def raw(
        self,
        service: str,
        method: str,
        request: Any,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        channel: grpc.Channel | None = None,
    ) -> tuple[grpc.StatusCode, str, bytes | None]:
        """Sends one request (a message or raw bytes); ``timeout`` None is the deadline.

        Returns:
            The code, the details and the response bytes (a stream's first message).
        """
        timeout = self.deadline if timeout is None else timeout
        descriptor = self.method(service, method)
        path = f"/{self.services[service].full_name}/{method}"
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        chan = channel or self.channels[service]
        try:
            if descriptor.server_streaming:
                stream = chan.unary_stream(path)(payload, timeout=timeout, metadata=metadata)
                try:
                    response = next(iter(stream), None)
                finally:
                    stream.cancel()
            else:
                response = chan.unary_unary(path)(payload, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", None
        return grpc.StatusCode.OK, "", response

    def call(
        self,
        category: str,
        label: str,
        service: str,
        method: str,
        request: Any,
        expect: str = REFUSE,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        channel: grpc.Channel | None = None,
        field_hint: str | None = None,
    ) -> Answer:
        """Sends one request, judges the answer against ``expect`` and counts it."""
        timeout = self.deadline if timeout is None else timeout
        code, details, response = self.raw(service, method, request, timeout, metadata, channel)
        streaming = self.method(service, method).server_streaming
        verdict, what = judge(code, details, expect, streaming, timeout)
        request_text = f"{service}.{method} {label}"
        self.record(category, request_text, verdict, what)
        if (
            verdict == CLEAN
            and field_hint
            and code == grpc.StatusCode.INVALID_ARGUMENT
            and field_hint not in details
        ):
            self.note(f"[{category}] {request_text}: refused without naming {field_hint!r}")
        if code == grpc.StatusCode.OK and method.startswith("Create") and response:
            self._remember_job(service, method, response)
        return Answer(code, details, response, verdict)

    def _remember_job(self, service: str, method: str, response: bytes) -> None:
        message = message_class(self.method(service, method).output_type).FromString(response)
        job = getattr(message, "job", None)
        if job is not None and job.name:
            self.created.append((service, job.name))

    def cancel_created(self, since: int = 0) -> None:
        """Cancels the jobs created after index ``since`` of ``self.created``."""
        for service, name in self.created[since:]:
            method = "CancelPruneJob" if service == "pruning" else "CancelEvalJob"
            self.raw(service, method, self._named(service, method, name), timeout=10)

    def job(self, service: str, name: str) -> Any:
        """The job message of ``name`` (None when the call fails)."""
        method = "GetPruneJob" if service == "pruning" else "GetEvalJob"
        code, _, response = self.raw(service, method, self._named(service, method, name))
        if code != grpc.StatusCode.OK or response is None:
            return None
        return message_class(self.method(service, method).output_type).FromString(response).job

    def wait_job(self, service: str, name: str, timeout: float) -> Any:
        """Polls a job until it is terminal or ``timeout`` passes; returns its last message."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.job(service, name)
            if job is not None and job.status.state >= 3:  # SUCCEEDED, FAILED, CANCELLED
                return job
            time.sleep(0.5)
        return job

    def big_string(self, size: int) -> str:
        """``size`` characters."""
        return "x" * size


def eval_spec(**fields: Any) -> Any:
    """A small EvalSpec on the reference model (CPU, one repeat, no idle baseline)."""
    from greenprune.api.eval.v1 import eval_pb2

    base = {
        "model": REFERENCE,
        "tasks": ["greenprune_facts"],
        "limit": 2,
        "repeats": 1,
        "warmup_batches": 0,
        "device": "cpu",
    }
    base.update(fields)
    return eval_pb2.EvalSpec(**base)
