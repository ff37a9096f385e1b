"""An adversarial campaign against the three services, for the counts of hardening issue 16.

Starts a ResultsService (real DuckDB file), a PruningService and an EvalService in this process,
each on port 0 with a bearer token and its own temporary state, and sends them what the issue's
adversarial pass sent, by category (the issue's nine findings, plus random bytes and bad tokens):

1. client-chosen code: task folders outside the roots (``/etc``, ``..``, symlinks), task YAML
   with ``!function``, ``!!python/...``, ``class:``, includes leaving the root; planted under a
   task root (``GREENPRUNE_EVAL_TASK_ROOTS``); no marker file may ever be written.
2. the ResultsService stores anything: 1 MB and 35 MB strings, NUL bytes, inf/nan/-inf in every
   double of RecordEvalRun/RecordPruneRun/RecordProfileRun, extreme finite values; afterwards
   every read (each QueryView view, List*, ExportView csv/parquet, ``greenprune report``) answers.
3. spec bounds: every bounded field of PruneSpec/EvalSpec/ProfileSpec/RecoverySpec below and
   above its bound (from ``greenprune.core.limits``), type extremes, 1e308, nan.
4. lost work: a results outage during a prune longer than the reporting retry window, with a
   restart of the pruning service during it, then exactly one record; a lost database, a rerun.
5. the app without the token: anonymous and wrong-token Streamlit sessions see no data.
6. Health.Watch streams SERVING on all three services.
7. clean errors: page tokens, model names, resource names, huge inputs (the error's details must
   stay short).
8. the experiment file check (``greenprune run --dry-run FILE``): alias bombs, deep nesting,
   binary files, unknown keys, unknown models and tasks, every file bound + 1.
9. a failure inside lm-eval names the task, the subject, the exception type and file:line.

Plus random bytes on every method and bad-token calls on every method (all UNAUTHENTICATED).

A bad outcome is: INTERNAL or UNKNOWN, no answer within the deadline, a traceback printed by
the CLI, a stored value that breaks a later read, a code-execution marker written, accepted input
that should have been refused (or a valid request refused), or error details longer than
``MAX_DETAILS`` characters. The summary gives, per category, requests tried / clean errors /
accepted / bad; the exit status is 1 when any bad outcome occurred, each listed with its request.

Requests are plain list entries (``HOSTILE_TASK_YAML``, ``TASK_FOLDER_PATHS``,
``TASK_SOURCE_UPLOADS``, ``BAD_PAGE_TOKENS``, ``BAD_NAMES``, ``experiment_files`` ...); methods
added to the protos are reached by the random-bytes and bad-token categories without changes.

Run: ``python bench/adversarial.py [--quick] [--only 2,7] [--seed 0] [--keep]``
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import math
import os
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

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

REFUSE, ACCEPT, EITHER, UNAUTH = "refuse", "accept", "either", "unauthenticated"
CLEAN, ACCEPTED, BAD = "clean", "accepted", "bad"

CLEAN_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
MAX_DETAILS = 1024
"""Error details longer than this echo the input (the issue asks for a short prefix)."""

MB = 1024 * 1024
TOKEN = "adversarial-token"
REFERENCE = "reference:tiny-llama"
PROFILE_CHECKPOINT = "ckpt-adversarial"
"""A checkpoint folder planted with a manifest, so profile specs reach their bounds checks."""


# -- tallies -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of one category."""

    tried: int = 0
    clean: int = 0
    accepted: int = 0
    bad: int = 0


@dataclass(frozen=True)
class Bad:
    """One bad outcome: its category, the request, what happened."""

    category: str
    request: str
    what: str


@dataclass
class Answer:
    """What one RPC returned."""

    code: grpc.StatusCode
    details: str
    response: bytes | None
    verdict: str


@dataclass
class Results:
    """The campaign's outcome."""

    tallies: dict[str, Tally]
    bads: list[Bad]
    notes: list[str]
    seconds: float
    home: Path

    @property
    def ok(self) -> bool:
        """Whether no bad outcome occurred."""
        return not self.bads


# -- services ------------------------------------------------------------------------------------


def _service_descriptors() -> dict[str, Any]:
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


def _options() -> list[tuple[str, int]]:
    from greenprune.rpc.client import DEFAULT_MAX_MESSAGE_BYTES

    return [
        ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ]


@contextlib.contextmanager
def _env(**values: str | None) -> Iterator[None]:
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
    from results_service.server import build
    from tests.servers import ServerThread

    settings = ResultsSettings(port=port, state_dir=state_dir, token=token, grace_seconds=1.0)
    return ServerThread(lambda: build(settings), settings).start()


def start_worker(kind: str, home: Path, token: str | None, results: str) -> Any:
    """A PruningService or an EvalService (real job workers, no warm process)."""
    from greenprune.core.settings import EvalSettings, PruningSettings
    from tests.servers import ServerThread

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


# -- hostile task folders (category 1) ------------------------------------------------------------

TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: multiple_choice
doc_to_text: q
doc_to_choice: choices
doc_to_target: answer
target_delimiter: "{delimiter}"
metric_list:
  - metric: acc
{extra}
"""

EVIL_PY = """\
from pathlib import Path
Path({marker!r}).write_text("ran")
def process_docs(docs):
    return docs
def metric(*args):
    return 0
class Task:
    pass
"""

HOSTILE_TASK_YAML: list[tuple[str, str]] = [
    ("function-tag", "process_docs: !function evil.process_docs"),
    ("class-key", "class: evil.Task"),
    ("class-function", "class: !function evil.Task"),
    ("metric-function", "metric_list:\n  - metric: !function evil.metric"),
    ("python-name", "x: !!python/name:os.system"),
    ("python-apply", 'x: !!python/object/apply:os.system ["touch {marker}"]'),
    ("include-absolute", "include: {outside}/evil_outside.yaml"),
    ("include-relative", "include: ../../outside/evil_outside.yaml"),
    ("include-etc", "include: /etc/hostname"),
]
"""(name, extra YAML) of each hostile task folder planted under the task root; ``{marker}`` is
the folder's marker file, ``{outside}`` a folder beside the root holding evil YAML."""

TASK_FOLDER_PATHS: list[tuple[str, str]] = [
    ("/etc", "/etc"),
    ("/usr", "/usr"),
    ("root/..", "{root}/.."),
    ("root/../..", "{root}/../.."),
    ("sibling outside", "{root}/../outside"),
    ("relative ../../../../etc", "../../../../etc"),
    ("symlink to outside", "{root}/link-outside"),
    ("symlink to /etc", "{root}/link-etc"),
    ("the whole root (holds hostile folders)", "{root}"),
    ("a task file, not a folder", "{root}/function-tag/task.yaml"),
    ("NUL", "{root}/a\x00b"),
    ("300 characters", "{root}/" + "x" * 300),
    ("empty", ""),
]
"""(label, task_paths entry) of folders a client must not load; ``{root}`` is the task root."""

TASK_SOURCE_UPLOADS: list[tuple[str, list[tuple[str, str | bytes]], str]] = [
    ("!function with its module", [("t.yaml", "function-tag"), ("evil.py", "evil")], REFUSE),
    ("!!python/object/apply", [("t.yaml", "python-apply")], REFUSE),
    ("class: key", [("t.yaml", "class-key"), ("evil.py", "evil")], REFUSE),
    ("include of /etc", [("t.yaml", "include-etc")], REFUSE),
    ("path ../escape.yaml", [("../escape.yaml", "plain")], REFUSE),
    ("absolute path", [("/tmp/escape.yaml", "plain")], REFUSE),
    ("NUL in path", [("a\x00b.yaml", "plain")], REFUSE),
    ("a plain task with its data", [("t.yaml", "plain"), ("data.jsonl", "data")], ACCEPT),
]
"""(label, files, expected) sent through CreateTaskSource when the EvalService has it; a file's
content names a HOSTILE_TASK_YAML entry, ``plain`` (a task without code), ``evil`` (the Python
module) or ``data`` (its JSONL)."""


def _task_yaml(task: str, extra: str, delimiter: str = " ", data: str = "data.jsonl") -> str:
    return TASK_YAML.format(task=task, extra=extra, delimiter=delimiter, data=data)


DATA_JSONL = '{"q": "Question: 1+1? Answer:", "choices": ["2", "3"], "answer": 0}\n'


def plant_task_root(home: Path) -> tuple[Path, Path, Path]:
    """Writes the task root (hostile folders, the lm-eval failure task).

    Returns:
        The task root, the folder beside it, the folder markers are written to.
    """
    root, outside, markers = home / "tasks", home / "outside", home / "markers"
    for folder in (root, outside, markers):
        folder.mkdir(parents=True, exist_ok=True)
    (outside / "evil.py").write_text(EVIL_PY.format(marker=str(markers / "outside")))
    (outside / "data.jsonl").write_text(DATA_JSONL)
    (outside / "evil_outside.yaml").write_text(
        _task_yaml("adv_outside", "process_docs: !function evil.process_docs")
    )
    for name, extra in HOSTILE_TASK_YAML:
        folder = root / name
        folder.mkdir()
        marker = markers / name
        (folder / "evil.py").write_text(EVIL_PY.format(marker=str(marker)))
        (folder / "data.jsonl").write_text(DATA_JSONL)
        text = extra.format(marker=str(marker), outside=str(outside))
        (folder / "task.yaml").write_text(_task_yaml(_task_name(name), text))
    (root / "link-outside").symlink_to(outside)
    (root / "link-etc").symlink_to("/etc")
    # Category 9: a context of spaces only, which lm-eval encodes to no tokens.
    failing = home / "tasks-library" / "empty-context"
    failing.mkdir(parents=True)
    # An absolute data path: lm-eval resolves a relative one against the worker's folder.
    data = failing / "data.jsonl"
    (failing / "task.yaml").write_text(_task_yaml(LIBRARY_TASK, "", delimiter="", data=str(data)))
    data.write_text('{"q": "   ", "choices": ["a", "b"], "answer": 0}\n' * 4)
    return root, outside, markers


def _task_name(folder: str) -> str:
    return "adv_" + folder.replace("-", "_")


LIBRARY_TASK = "adv_empty_context"


# -- messages ------------------------------------------------------------------------------------


def _message_class(descriptor: Any) -> Any:
    from google.protobuf.message_factory import GetMessageClass

    return GetMessageClass(descriptor)


Step = tuple[str, Any]
"""A step of a field path: (field name, index) where index is None (singular), an int (a
repeated element), "append", "map" (a map value) or "mapkey" (a map key)."""


def scalar_paths(
    message: Any, wanted: Callable[[Any], bool], prefix: tuple[Step, ...] = (), depth: int = 0
) -> list[tuple[Step, ...]]:
    """Paths to every scalar field that ``wanted(field_descriptor)`` selects.

    Set and settable submessages are entered; repeated ones through their first element.
    """
    found: list[tuple[Step, ...]] = []
    for fd in message.DESCRIPTOR.fields:
        if fd.message_type is not None:
            if fd.message_type.GetOptions().map_entry:
                if wanted(fd.message_type.fields_by_name["value"]):
                    found.append((*prefix, (fd.name, "map")))
                if wanted(fd.message_type.fields_by_name["key"]):
                    found.append((*prefix, (fd.name, "mapkey")))
                continue
            if fd.message_type.full_name.startswith("google.protobuf.") or depth >= 6:
                continue
            if _is_repeated(fd):
                items = getattr(message, fd.name)
                if len(items):
                    found += scalar_paths(items[0], wanted, (*prefix, (fd.name, 0)), depth + 1)
            else:
                sub = getattr(message, fd.name)
                found += scalar_paths(sub, wanted, (*prefix, (fd.name, None)), depth + 1)
        elif wanted(fd):
            if _is_repeated(fd):
                step = 0 if len(getattr(message, fd.name)) else "append"
                found.append((*prefix, (fd.name, step)))
            else:
                found.append((*prefix, (fd.name, None)))
    return found


def _is_repeated(fd: Any) -> bool:
    if hasattr(fd, "is_repeated"):
        return bool(fd.is_repeated)
    return bool(fd.label == fd.LABEL_REPEATED)


def apply_path(message: Any, path: Sequence[Step], value: Any) -> None:
    """Sets the field at ``path`` of ``message`` to ``value``."""
    *parents, (name, how) = path
    for parent, index in parents:
        message = getattr(message, parent) if index is None else getattr(message, parent)[index]
    if how is None:
        setattr(message, name, value)
    elif how == "append":
        getattr(message, name).append(value)
    elif how == "map":
        getattr(message, name)["k"] = value
    elif how == "mapkey":
        container = getattr(message, name)
        value_fd = message.DESCRIPTOR.fields_by_name[name].message_type.fields_by_name["value"]
        container[value] = "v" if value_fd.cpp_type == value_fd.CPPTYPE_STRING else 0
    else:
        getattr(message, name)[how] = value


def path_text(path: Sequence[Step]) -> str:
    """``result.metrics[0].value`` for a path."""
    parts = []
    for name, how in path:
        parts.append(name + (f"[{how}]" if isinstance(how, int) else f"<{how}>" if how else ""))
    return ".".join(parts)


def _is_double(fd: Any) -> bool:
    return fd.cpp_type in (fd.CPPTYPE_DOUBLE, fd.CPPTYPE_FLOAT)


def _is_string(fd: Any) -> bool:
    return fd.cpp_type == fd.CPPTYPE_STRING and fd.type != fd.TYPE_BYTES


def _is_int(fd: Any) -> bool:
    return fd.cpp_type in _INT_RANGES


_INT_RANGES: dict[int, tuple[int, int]] = {}


def _init_int_ranges() -> None:
    from google.protobuf.descriptor import FieldDescriptor as F

    _INT_RANGES.update(
        {
            F.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
            F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
            F.CPPTYPE_UINT32: (0, 2**32 - 1),
            F.CPPTYPE_UINT64: (0, 2**64 - 1),
        }
    )


def field_at(message_class: Any, path: str) -> Any:
    """The field descriptor of a dotted path (``calibration.samples``) of a message class."""
    descriptor = message_class.DESCRIPTOR
    *parents, name = path.split(".")
    for part in parents:
        descriptor = descriptor.fields_by_name[part].message_type
    return descriptor.fields_by_name[name]


def set_dotted(message: Any, path: str, value: Any) -> None:
    """Sets a dotted path (``calibration.samples``) of ``message``."""
    *parents, name = path.split(".")
    for part in parents:
        message = getattr(message, part)
    setattr(message, name, value)


def out_of_bounds(limit: Any, fd: Any) -> tuple[list[tuple[str, Any]], int]:
    """Values outside ``limit`` that the field can hold.

    Returns:
        The (label, value) pairs, and how many were skipped because they are zero, which
        proto3 reads as unset (the service fills the default).
    """
    if _is_int(fd):
        low, high = _INT_RANGES[fd.cpp_type]
        above = int(limit.high) if limit.below_high else int(limit.high) + 1
        candidates = [
            ("low-1", int(limit.low) - 1),
            ("high" if limit.below_high else "high+1", above),
            ("type min", low),
            ("type max", high),
        ]
        candidates = [(label, v) for label, v in candidates if low <= v <= high]
    else:
        above = (
            ("high", limit.high)
            if limit.below_high
            else ("just above high", math.nextafter(limit.high, math.inf))
        )
        candidates = [
            ("low-1", limit.low - 1),
            ("just below low", math.nextafter(limit.low, -math.inf)),
            above,
            ("high+1", limit.high + 1),
            ("1e308", 1e308),
            ("-1e308", -1e308),
            ("nan", math.nan),
            ("inf", math.inf),
            ("-inf", -math.inf),
        ]
    values: list[tuple[str, Any]] = []
    seen: set[Any] = set()
    skipped = 0
    for label, value in candidates:
        key = "nan" if isinstance(value, float) and math.isnan(value) else value
        if key in seen or (
            not (isinstance(value, float) and math.isnan(value)) and limit.allows(value)
        ):
            continue
        seen.add(key)
        if value == 0 and not fd.has_presence:
            skipped += 1  # proto3: zero is "unset" and takes the default
            continue
        values.append((label, value))
    return values, skipped


# -- the campaign ----------------------------------------------------------------------------------


class Campaign:
    """Runs the categories against in-process services and tallies every request.

    Args:
        home: A fresh folder for the services' state, task roots and files.
        quick: Smaller counts and strings (a smoke run).
        seed: Seeds the random requests.
        say: Prints progress.
    """

    def __init__(
        self, home: Path, quick: bool = False, seed: int = 0, say: Callable[[str], None] = print
    ) -> None:
        _init_int_ranges()
        self.home = home
        self.quick = quick
        self.rng = random.Random(seed)
        self.say = say
        self.token = TOKEN
        self.tallies = {key: Tally() for key in CATEGORIES}
        self.bads: list[Bad] = []
        self.notes: list[str] = []
        self.log: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.services = _service_descriptors()
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
        with _env(GREENPRUNE_EVAL_TASK_ROOTS=roots, GREENPRUNE_EVAL_ALLOW_TASK_CODE=None):
            self.servers["results"] = start_results(self.home / "results", self.token)
            address = self.servers["results"].address
            for kind in kinds:
                if kind != "results":
                    self.servers[kind] = start_worker(kind, self.home, self.token, address)
        from greenprune.rpc.client import sync_channel

        for kind, server in self.servers.items():
            self.channels[kind] = sync_channel(server.address, self.token)
            self.bare[kind] = grpc.insecure_channel(server.address, options=_options())

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
        return _message_class(self.method(service, method).input_type)(**fields)

    def _named(self, service: str, method: str, name: str) -> Any:
        return self.request(service, method, name=name)

    def raw(
        self,
        service: str,
        method: str,
        request: Any,
        timeout: float = 20.0,
        metadata: Sequence[tuple[str, str]] | None = None,
        channel: grpc.Channel | None = None,
    ) -> tuple[grpc.StatusCode, str, bytes | None]:
        """Sends one request (a message or raw bytes).

        Returns:
            The code, the details and the response bytes (a stream's first message).
        """
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
        timeout: float = 20.0,
        metadata: Sequence[tuple[str, str]] | None = None,
        channel: grpc.Channel | None = None,
        field_hint: str | None = None,
    ) -> Answer:
        """Sends one request, judges the answer against ``expect`` and counts it."""
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
        message = _message_class(self.method(service, method).output_type).FromString(response)
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
        return _message_class(self.method(service, method).output_type).FromString(response).job

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


def judge(
    code: grpc.StatusCode, details: str, expect: str, streaming: bool, timeout: float
) -> tuple[str, str]:
    """The verdict on one answer: clean, accepted or bad (with what happened)."""
    short = details[:160].replace("\n", " ")
    if code == grpc.StatusCode.OK:
        if expect in (ACCEPT, EITHER):
            return ACCEPTED, ""
        if expect == UNAUTH:
            return BAD, "answered OK to a bad token"
        return BAD, "accepted input that should have been refused"
    if expect == UNAUTH:
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return CLEAN, ""
        return BAD, f"{code.name} instead of UNAUTHENTICATED: {short}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        if streaming and expect != REFUSE:
            return ACCEPTED, ""  # a stream on a live job runs into the deadline
        return BAD, f"no answer within the {timeout:.0f} s deadline"
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return BAD, f"{code.name}: {short}"
    lowered = details.lower()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and (
        "metadata" in lowered or "larger than max" in lowered
    ):
        return BAD, f"transport-level RESOURCE_EXHAUSTED: {short}"
    if code in CLEAN_CODES:
        if len(details) > MAX_DETAILS:
            return BAD, f"{code.name} whose details are {len(details)} characters: {short}..."
        if expect == ACCEPT:
            return BAD, f"a valid request was refused: {code.name}: {short}"
        return CLEAN, ""
    return BAD, f"{code.name}: {short}"


# -- category 1: client-chosen code ----------------------------------------------------------------


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


def category_code(c: Campaign) -> None:
    """Hostile task folders and uploads; no marker file may be written."""
    counter = iter(range(10**6))
    for name, _ in HOSTILE_TASK_YAML:
        spec = eval_spec(tasks=[_task_name(name)], task_paths=[str(c.task_root / name)])
        request = c.request("eval", "CreateEvalJob", request_id=f"code-{next(counter)}", spec=spec)
        answer = c.call(
            "1", f"task folder '{name}' under the root", "eval", "CreateEvalJob", request
        )
        if answer.code == grpc.StatusCode.OK:
            c.watch.append(("1", "eval", c.created[-1][1]))
    for label, template in TASK_FOLDER_PATHS:
        path = template.format(root=c.task_root)
        spec = eval_spec(tasks=["adv_function_tag"], task_paths=[path])
        request = c.request("eval", "CreateEvalJob", request_id=f"code-{next(counter)}", spec=spec)
        answer = c.call("1", f"task_paths {label}", "eval", "CreateEvalJob", request)
        if answer.code == grpc.StatusCode.OK:
            c.watch.append(("1", "eval", c.created[-1][1]))
    for label, task in (("task '../../etc/passwd'", "../../etc/passwd"), ("task /etc", "/etc")):
        spec = eval_spec(tasks=[task])
        request = c.request("eval", "CreateEvalJob", request_id=f"code-{next(counter)}", spec=spec)
        c.call("1", label, "eval", "CreateEvalJob", request)
    if c.has("eval", "CreateTaskSource"):
        _task_sources(c, counter)
    else:
        c.note("[1] EvalService has no CreateTaskSource here: TASK_SOURCE_UPLOADS not sent")


def _task_sources(c: Campaign, counter: Iterator[int]) -> None:
    contents = {name: _task_yaml(_task_name(name), extra) for name, extra in HOSTILE_TASK_YAML}
    contents["plain"] = _task_yaml("adv_uploaded", "")
    contents["data"] = DATA_JSONL
    for label, files, expect in TASK_SOURCE_UPLOADS:
        try:
            request = c.request("eval", "CreateTaskSource")
            for path, content in files:
                text = contents.get(content, content) if isinstance(content, str) else content
                if content == "evil":
                    text = EVIL_PY.format(marker=str(c.markers / f"upload-{next(counter)}"))
                text = text.replace("{marker}", str(c.markers / "upload")).replace(
                    "{outside}", str(c.outside)
                )
                request.task_source.files.add(
                    path=path, content=text.encode() if isinstance(text, str) else text
                )
        except (AttributeError, ValueError, TypeError) as exc:
            c.note(f"[1] CreateTaskSource request shape changed ({exc}); '{label}' not sent")
            continue
        c.call("1", f"task source: {label}", "eval", "CreateTaskSource", request, expect)


def check_markers(c: Campaign) -> None:
    """Awaits jobs that were accepted, then looks for code-execution markers."""
    for category, service, name in c.watch:
        job = c.wait_job(service, name, timeout=30 if c.quick else 150)
        if job is not None and job.status.state < 3:
            c.note(f"[{category}] {name} still running at the marker check; cancelled")
            c.raw(service, "CancelEvalJob", c._named(service, "CancelEvalJob", name))
    written = sorted(p.name for p in c.markers.iterdir()) if c.markers.exists() else []
    for name in written:
        c.record("1", f"marker {name}", BAD, f"client-chosen code ran: {c.markers / name} written")
    c.record(
        "1",
        "markers checked after every job",
        ACCEPTED if not written else BAD,
        "" if not written else f"{len(written)} marker files",
    )


# -- category 2: the results store -----------------------------------------------------------------


def _records() -> tuple[list[Any], list[Any], list[Any]]:
    from tests import samples

    prunes, evals = samples.demo_study(experiment="adv")
    profile = samples.demo_profile(experiment="adv")
    return prunes, evals, [profile]


def category_store_writes(c: Campaign) -> None:
    """Seeds valid runs, then hostile and extreme ones."""
    from greenprune.api.results.v1 import results_pb2 as pb

    prunes, evals, profiles = _records()
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
        for path in scalar_paths(base, _is_double):
            hostile += [(repr(v), path, v) for v in (math.inf, -math.inf, math.nan)]
        for path in scalar_paths(base, _is_string):
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
        for path in scalar_paths(base, _is_double):
            extreme += [
                (repr(v), path, v)
                for v in (1.7976931348623157e308, -1.7976931348623157e308, 5e-324)
            ]
        for path in scalar_paths(base, _is_int):
            extreme += [("int max", path, "max"), ("int min", path, "min")]
        for label, path, value in _sample(c, extreme, 6 if c.quick else None):
            run = type(base)()
            run.CopyFrom(base)
            if value in ("max", "min"):
                fd = _leaf(base, path)
                low, high = _INT_RANGES[fd.cpp_type]
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


def _read_pages(c: Campaign, label: str, method: str, request: Any, expect: str) -> None:
    """Reads every page of a read RPC (following next_page_token where the protos have one)."""
    out_type = _message_class(c.method("results", method).output_type)
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
        _env(GREENPRUNE_TOKEN=c.token),
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


# -- category 3: spec bounds -----------------------------------------------------------------------


def category_bounds(c: Campaign) -> None:
    """Every bounded field below and above its bound, and type extremes; all refused."""
    from greenprune.api.eval.v1 import eval_pb2
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.core import limits

    prune_base = pruning_pb2.PruneSpec(
        model=REFERENCE, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1, ratio=0.2, prune_mlp=True
    )
    recovery_base = pruning_pb2.PruneSpec()
    recovery_base.CopyFrom(prune_base)
    recovery_base.recovery.CopyFrom(
        pruning_pb2.RecoverySpec(
            rank=8, alpha=16, steps=1, learning_rate=1e-3, batch_size=1, sequence_length=16
        )
    )
    eval_base = eval_spec()
    profile_base = eval_pb2.EvalSpec(
        device="cpu", profile=eval_pb2.ProfileSpec(checkpoint_ids=[PROFILE_CHECKPOINT])
    )
    tables: list[tuple[str, Any, Any, str, str, str]] = [
        ("PruneSpec", limits.PRUNE_SPEC, prune_base, "pruning", "CreatePruneJob", ""),
        (
            "RecoverySpec",
            limits.RECOVERY_SPEC,
            recovery_base,
            "pruning",
            "CreatePruneJob",
            "recovery.",
        ),
        ("EvalSpec", limits.EVAL_SPEC, eval_base, "eval", "CreateEvalJob", ""),
        ("EvalSpec of a profile", limits.EVAL_SPEC, profile_base, "eval", "CreateEvalJob", ""),
        ("ProfileSpec", limits.PROFILE_SPEC, profile_base, "eval", "CreateEvalJob", ""),
    ]
    validate_only = {
        "pruning": c.has("pruning", "CreatePruneJob", "validate_only"),
        "eval": c.has("eval", "CreateEvalJob", "validate_only"),
    }
    counter = iter(range(10**6))
    skipped = 0

    def send(label: str, service: str, method: str, spec: Any, expect: str, hint: str) -> None:
        for only in (False, True) if validate_only[service] else (False,):
            request = c.request(service, method, request_id=f"bounds-{next(counter)}", spec=spec)
            if only:
                request.validate_only = True
            since = len(c.created)
            c.call(
                "3",
                label + (" (validate_only)" if only else ""),
                service,
                method,
                request,
                expect,
                field_hint=hint,
            )
            c.cancel_created(since)

    for title, table, base, service, method, prefix in tables:
        send(f"{title} control (in bounds)", service, method, base, ACCEPT, "")
        spec_class = type(base)
        for key, limit in table.items():
            path = prefix + key
            fd = field_at(spec_class, path)
            values, zero = out_of_bounds(limit, fd)
            skipped += zero
            for label, value in values:
                spec = spec_class()
                spec.CopyFrom(base)
                set_dotted(spec, path, value)
                send(
                    f"{title} {path}={label} ({value!r})",
                    service,
                    method,
                    spec,
                    REFUSE,
                    path.split(".")[-1],
                )
    for label, value in (
        ("0", 0),
        ("-1", -1),
        ("high+1", int(limits.PROFILE_BATCH_SIZE.high) + 1),
        ("int32 max", 2**31 - 1),
    ):
        spec = eval_pb2.EvalSpec()
        spec.CopyFrom(profile_base)
        spec.profile.batch_sizes.append(value)
        send(
            f"ProfileSpec batch_sizes[0]={label}",
            "eval",
            "CreateEvalJob",
            spec,
            REFUSE,
            "batch_sizes",
        )
    if skipped:
        c.note(
            f"[3] {skipped} low-1 values skipped: they are 0, which proto3 reads as unset "
            "(the service fills the default)"
        )


# -- category 4: lost work -------------------------------------------------------------------------


def category_lost_work(c: Campaign) -> None:
    """A results outage longer than the reporting retry window during a real prune.

    The pruning service restarts during the outage; afterwards there is exactly one record.
    Then the database is lost, and a rerun of the same request reports the job again.
    """
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.api.results.v1 import results_pb2 as pb
    from greenprune.rpc.client import sync_channel
    from greenprune.rpc.reporting import ResultsReporter

    outage = 15.0 if c.quick else 70.0
    window = ResultsReporter("127.0.0.1:1", None)._retry_seconds
    home = c.home / "lost"
    port = free_port()
    address = f"127.0.0.1:{port}"
    spec = pruning_pb2.PruneSpec(
        model=REFERENCE, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1, ratio=0.2, prune_mlp=True
    )
    request = pruning_pb2.CreatePruneJobRequest(request_id="lost/1", spec=spec, experiment="lost")
    servers: list[Any] = []

    def pruning_server() -> Any:
        server = start_worker("pruning", home, c.token, address)
        servers.append(server)
        return server

    def prune_stub(server: Any) -> Any:
        from greenprune.api.pruning.v1 import pruning_pb2_grpc

        return pruning_pb2_grpc.PruningServiceStub(sync_channel(server.address, c.token))

    def wait(stub: Any, name: str, until: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                job = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=name), timeout=10).job
                if until(job):
                    return job
            time.sleep(0.5)
        return job

    def records(results: Any) -> list[Any]:
        from greenprune.api.results.v1 import results_pb2_grpc

        with contextlib.closing(sync_channel(results.address, c.token)) as chan:
            stub = results_pb2_grpc.ResultsServiceStub(chan)
            listed = stub.ListPruneRuns(
                pb.ListPruneRunsRequest(experiment="lost", page_size=1000), timeout=30
            )
        return [run for run in listed.runs if run.request_id == "lost/1"]

    results = None
    try:
        server = pruning_server()
        stub = prune_stub(server)
        job = stub.CreatePruneJob(request, timeout=60).job
        c.record("4", "CreatePruneJob while the ResultsService is down", ACCEPTED)
        job = wait(
            stub,
            job.name,
            lambda j: j.status.stage.startswith("reporting (retry") or j.status.state >= 3,
            180,
        )
        if job is None or not job.status.stage.startswith("reporting (retry"):
            state = "none" if job is None else f"{job.status.state} {job.status.stage!r}"
            c.record(
                "4",
                "prune finishes during the outage",
                BAD,
                f"never reached 'reporting (retry N)': {state} "
                f"{'' if job is None else job.status.error.message[:200]}",
            )
            return
        failed_at = time.monotonic()
        c.say(
            f"  [4] prune done, reporting retries; outage of {outage:.0f} s "
            f"(one report call's retry window is {window:.0f} s)"
        )
        server.stop()
        server = pruning_server()  # a restart of the pruning service during the outage
        stub = prune_stub(server)
        time.sleep(max(0.0, failed_at + outage - time.monotonic()))
        still = stub.GetPruneJob(pruning_pb2.GetPruneJobRequest(name=job.name), timeout=10).job
        if still.status.state >= 3:
            c.record(
                "4",
                f"job after a {outage:.0f} s outage and a restart",
                BAD,
                f"ended before the ResultsService came back: state {still.status.state}, "
                f"{still.status.error.message[:200]}",
            )
            return
        c.record("4", f"job still reporting after a {outage:.0f} s outage and a restart", ACCEPTED)
        results = start_results(home / "results", c.token, port)
        done = wait(stub, job.name, lambda j: j.status.state >= 3, 120)
        found = records(results)
        checkpoint = done.result.checkpoint_id if done is not None else ""
        if done is None or done.status.state != 3 or len(found) != 1:
            c.record(
                "4",
                "exactly one record after the outage",
                BAD,
                f"state {None if done is None else done.status.state}, {len(found)} records",
            )
            return
        on_disk = (home / "checkpoints" / checkpoint).is_dir()
        c.record(
            "4",
            "exactly one record after the outage",
            ACCEPTED if on_disk else BAD,
            "" if on_disk else f"record names checkpoint {checkpoint!r}, not on disk",
        )
        results.stop()
        db = results.settings.db_path
        for path in db.parent.glob(db.name + "*"):
            path.unlink()
        results = start_results(home / "results", c.token, port)
        again = stub.CreatePruneJob(request, timeout=60).job
        done = wait(stub, again.name, lambda j: j.status.state >= 3 and bool(records(results)), 120)
        found = records(results)
        ok = again.name == job.name and len(found) == 1
        c.record(
            "4",
            "rerun after a lost database re-reports the SUCCEEDED job",
            ACCEPTED if ok else BAD,
            ""
            if ok
            else f"job {again.name} (was {job.name}), {len(found)} records, state "
            f"{None if done is None else done.status.state}",
        )
    except Exception as exc:  # noqa: BLE001 - the scenario's own failure is a finding
        c.record("4", "lost-work scenario", BAD, f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop()
        if results is not None:
            with contextlib.suppress(Exception):
                results.stop()


# -- category 5: the app ---------------------------------------------------------------------------


def category_app(c: Campaign) -> None:
    """Anonymous and wrong-token Streamlit sessions see no data and read nothing."""
    from streamlit.testing.v1 import AppTest

    from results_app import data

    main = REPO / "results_app" / "main.py"
    pages = sorted(
        p.relative_to(main.parent).as_posix() for p in (main.parent / "app_pages").glob("*.py")
    )
    reads: list[str] = []
    saved: dict[str, Any] = {}
    for name in dir(data):
        function = getattr(data, name)
        if (
            inspect.isfunction(function)
            and not name.startswith("_")
            and (getattr(function, "__module__", "") == data.__name__)
        ):

            def spy(*args: Any, _name: str = name, _f: Any = function, **kwargs: Any) -> Any:
                reads.append(_name)
                return _f(*args, **kwargs)

            saved[name] = function
            setattr(data, name, spy)

    def shows_data(app: Any) -> bool:
        return bool(
            list(app.get("vega_lite_chart")) or list(app.dataframe) or list(app.sidebar.selectbox)
        )

    def session(
        label: str,
        typed: str | None = None,
        page: str | None = None,
        query: dict[str, str] | None = None,
        expect: str = REFUSE,
    ) -> None:
        reads.clear()
        try:
            app = AppTest.from_file(str(main), default_timeout=60)
            for key, value in (query or {}).items():
                app.query_params[key] = value
            if page:
                app.switch_page(page)
            app.run()
            if typed is not None and app.text_input:
                app.text_input[0].input(typed)
                app.button[0].click().run()
        except Exception as exc:  # noqa: BLE001
            c.record("5", label, BAD, f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        crash = ""
        if app.exception:
            error = app.exception[0]
            trace = "".join(error.stack_trace)
            frames = re.findall(r'File "[^"]*?(results_(?:service|app)/[^"]+)", line (\d+)', trace)
            where = ":".join(frames[-1]) if frames else "?"
            crash = f"exception in the app at {where}: {str(error.value)[:200]}"
        form = any(field.label == "Access token" for field in app.text_input)
        if expect == ACCEPT:
            if form:
                c.record("5", label, BAD, "the right token did not sign the session in")
            elif crash:
                c.record("5", label, BAD, f"signed in, then stored data broke the page: {crash}")
            elif not shows_data(app):
                c.record("5", label, BAD, "the signed-in session shows no data")
            else:
                c.record("5", label, ACCEPTED)
        elif shows_data(app) or reads:
            c.record("5", label, BAD, f"data shown without the token (reads: {sorted(set(reads))})")
        elif not form or crash:
            c.record("5", label, BAD, crash or "no sign-in form")
        else:
            c.record("5", label, CLEAN)

    from greenprune.api.results.v1 import results_pb2 as pb
    from tests import samples

    prunes, evals = samples.demo_study(experiment="adv-app")  # data for the signed-in control
    for run in prunes:
        c.raw("results", "RecordPruneRun", pb.RecordPruneRunRequest(run=run))
    c.raw("results", "BatchRecordEvalRuns", pb.BatchRecordEvalRunsRequest(runs=evals))
    token = c.token
    try:
        with _env(
            GREENPRUNE_APP_RESULTS_ADDRESS=c.servers["results"].address,
            GREENPRUNE_TOKEN=token,
            GREENPRUNE_APP_PASSWORD=None,
            GREENPRUNE_APP_ALLOW_ANONYMOUS=None,
        ):
            session("anonymous, first page")
            for page in pages if not c.quick else pages[:1]:
                session(f"anonymous, page {page}", page=page)
            wrong = [
                ("wrong token", "wrong"),
                ("empty token", ""),
                ("token + space", token + " "),
                ("token minus last char", token[:-1]),
                ("upper-case token", token.upper()),
                ("10,000 characters", "x" * 10_000),
            ]
            for label, typed in wrong:
                session(label, typed=typed)
            session("token as ?token= query parameter", query={"token": token})
            session("token as ?password= query parameter", query={"password": token})
            session("control: the right token", typed=token, expect=ACCEPT)
    finally:
        for name, function in saved.items():
            setattr(data, name, function)


# -- category 6: Health.Watch ----------------------------------------------------------------------


def category_health(c: Campaign) -> None:
    """Health.Watch (and Check) on every service: SERVING, with and without the token."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for kind in c.servers:
        full = c.services[kind].full_name
        for chan_label, chan in (("with token", c.channels[kind]), ("no token", c.bare[kind])):
            stub = health_pb2_grpc.HealthStub(chan)
            for service, wanted in (
                ("", "SERVING"),
                (full, "SERVING"),
                ("no.such.Service", "SERVICE_UNKNOWN"),
            ):
                label = f"{kind} Watch({service!r}) {chan_label}"
                try:
                    stream = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=10)
                    first = next(iter(stream))
                    stream.cancel()
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(first.status)
                except grpc.RpcError as exc:
                    clean = wanted == "SERVICE_UNKNOWN" and exc.code() == grpc.StatusCode.NOT_FOUND
                    c.record(
                        "6",
                        label,
                        CLEAN if clean else BAD,
                        f"{exc.code().name}: {(exc.details() or '')[:160]}",
                    )
                    continue
                c.record(
                    "6",
                    label,
                    ACCEPTED if status == wanted else BAD,
                    "" if status == wanted else f"streamed {status}, not {wanted}",
                )
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
                c.record(
                    "6",
                    f"{kind} Check {chan_label}",
                    ACCEPTED if status == health_pb2.HealthCheckResponse.SERVING else BAD,
                    f"status {status}",
                )
            except grpc.RpcError as exc:
                c.record("6", f"{kind} Check {chan_label}", BAD, exc.code().name)


# -- category 7: clean errors ----------------------------------------------------------------------

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


# -- category 8 (and file-borne 1): the experiment file check --------------------------------------

ALIAS_BOMB = (
    "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x, x]"]
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}" + f", *{chr(97 + i)}" * 8 + "]"
            for i in range(9)
        ]
    )
    + "\n"
)


@dataclass
class FileProbe:
    """One experiment file and what the CLI must do with it."""

    category: str
    label: str
    content: str | bytes | dict[str, Any] | None
    expect: str = REFUSE
    args: tuple[str, ...] = ("run", "{file}", "--dry-run")
    no_jobs_of: str = ""
    """For a real run: the experiment whose prune jobs must not have been submitted."""
    timeout: float = 10.0


def base_experiment(c: Campaign, name: str = "adv-file") -> dict[str, Any]:
    """A small valid experiment file (as a dict) pointed at the campaign's services."""
    services = {
        kind: c.servers[kind].address
        for kind in ("pruning", "eval", "results")
        if kind in c.servers
    }
    return {
        "name": name,
        "models": [REFERENCE],
        "pruning": {"method": "magnitude-l1", "ratios": [0.0, 0.2]},
        "eval": {"tasks": ["greenprune_facts"], "limit": 2, "repeats": 1, "device": "cpu"},
        "energy": {"profile": False},
        "services": services,
    }


def _with(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    *parents, name = dotted.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    node[name] = value
    return out


FILE_BOUNDS: dict[str, tuple[str, str]] = {
    "PRUNE_SPEC.ratio": ("pruning.ratios", "list"),
    "PRUNE_SPEC.keep_first_layers": ("pruning.keep_first_layers", ""),
    "PRUNE_SPEC.keep_last_layers": ("pruning.keep_last_layers", ""),
    "PRUNE_SPEC.round_to": ("pruning.round_to", ""),
    "PRUNE_SPEC.seed": ("seed", ""),
    "PRUNE_SPEC.calibration.samples": ("pruning.calibration.samples", ""),
    "PRUNE_SPEC.calibration.sequence_length": ("pruning.calibration.sequence_length", ""),
    "PRUNE_SPEC.depth_share": ("pruning.depth_share", ""),
    "PRUNE_SPEC.quantization_group_size": ("pruning.quantization_group_size", ""),
    "EVAL_SPEC.num_fewshot": ("eval.num_fewshot", ""),
    "EVAL_SPEC.limit": ("eval.limit", ""),
    "EVAL_SPEC.batch_size": ("eval.batch_size", ""),
    "EVAL_SPEC.repeats": ("eval.repeats", ""),
    "EVAL_SPEC.warmup_batches": ("eval.warmup_batches", ""),
    "EVAL_SPEC.idle_seconds": ("eval.idle_seconds", ""),
    "PROFILE_SPEC.profile.prefill_tokens": ("energy.prefill_tokens", "profile"),
    "PROFILE_SPEC.profile.decode_tokens": ("energy.decode_tokens", "profile"),
    "PROFILE_SPEC.profile.rounds": ("energy.rounds", "profile"),
    "PROFILE_SPEC.profile.window_seconds": ("energy.window_seconds", "profile"),
    "RECOVERY_SPEC.rank": ("recovery.rank", "recovery"),
    "RECOVERY_SPEC.alpha": ("recovery.alpha", "recovery"),
    "RECOVERY_SPEC.steps": ("recovery.steps", "recovery"),
    "RECOVERY_SPEC.learning_rate": ("recovery.learning_rate", "recovery"),
    "RECOVERY_SPEC.batch_size": ("recovery.batch_size", "recovery"),
    "RECOVERY_SPEC.sequence_length": ("recovery.sequence_length", "recovery"),
}
"""Where each limit of ``greenprune.core.limits`` lives in an experiment file."""


def experiment_files(c: Campaign) -> list[FileProbe]:
    """The experiment files of category 8 (and the file-borne ones of category 1)."""
    from greenprune.core import limits

    base = base_experiment(c)
    probes = [
        FileProbe("8", "control: a valid file", base, ACCEPT),
        FileProbe("8", "alias bomb", ALIAS_BOMB),
        FileProbe(
            "8",
            "alias bomb under an unknown key",
            "models: [m]\nunknown_key:\n  " + ALIAS_BOMB.replace("\n", "\n  "),
        ),
        FileProbe("8", "5,000-deep nested list", "x: " + "[" * 5000 + "]" * 5000 + "\n"),
        FileProbe(
            "8", "200-deep block list", "x:\n" + "".join("  " * i + "- \n" for i in range(1, 200))
        ),
        FileProbe("8", "binary (PNG header)", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"),
        FileProbe("8", "NUL bytes", b"models: [a]\x00\x01\n"),
        FileProbe("8", "invalid UTF-8", b"name: \xff\xfe\n"),
        FileProbe(
            "8",
            "!!python/object/apply tag",
            f"models: !!python/object/apply:os.system ['touch {c.markers / 'file-python'}']\n",
        ),
        FileProbe("8", "!function tag", "models: !function evil.models\n"),
        FileProbe("8", "empty file", ""),
        FileProbe("8", "a list, not a mapping", "- a\n- b\n"),
        FileProbe("8", "duplicate keys", "name: a\nname: b\n"),
        FileProbe("8", "2 MB file", "name: " + "x" * (2 * MB) + "\n"),
        FileProbe("8", "unknown top-level key", {**base, "unknown_key": 1}),
        FileProbe("8", "unknown nested key", _with(base, "pruning.unknown_key", 1)),
        FileProbe("8", "reference:nope", {**base, "models": ["reference:nope"]}),
        FileProbe("8", "nonexistent model folder", {**base, "models": ["/nonexistent/model"]}),
        FileProbe("8", "nonexistent relative model", {**base, "models": ["./no-such-model"]}),
        FileProbe("8", "nonexistent task", _with(base, "eval.tasks", ["no_such_task_adv"])),
        FileProbe(
            "8", "calibration.samples 5000", _with(base, "pruning.calibration.samples", 5000)
        ),
        FileProbe("8", "model name of 300 characters", {**base, "models": ["m" * 300]}),
        FileProbe("8", "device cuda:999", _with(base, "eval.device", "cuda:999")),
        FileProbe("8", "no such file", None),
        FileProbe(
            "1", "task_paths [../../../../etc]", _with(base, "eval.task_paths", ["../../../../etc"])
        ),
        FileProbe("1", "task_paths [/etc]", _with(base, "eval.task_paths", ["/etc"])),
        FileProbe(
            "1",
            "task_paths [a !function folder under the root]",
            _with(
                _with(base, "eval.tasks", ["adv_function_tag"]),
                "eval.task_paths",
                [str(c.task_root / "function-tag")],
            ),
        ),
    ]
    tables = {
        "PRUNE_SPEC": limits.PRUNE_SPEC,
        "EVAL_SPEC": limits.EVAL_SPEC,
        "PROFILE_SPEC": limits.PROFILE_SPEC,
        "RECOVERY_SPEC": limits.RECOVERY_SPEC,
    }
    for table_name, table in tables.items():
        for key, limit in table.items():
            where = FILE_BOUNDS.get(f"{table_name}.{key}")
            if where is None:
                if not (key == "seed" and table_name != "PRUNE_SPEC"):
                    c.note(f"[8] {table_name}[{key!r}] has no experiment-file field mapped here")
                continue
            dotted, kind = where
            integral = isinstance(limit.low, int) and isinstance(limit.high, int)
            above = limit.high if limit.below_high else (limit.high + 1)
            for label, value in (
                ("low-1", limit.low - 1),
                ("high+1" if not limit.below_high else "high", above),
            ):
                value = int(value) if integral else value
                doc = base
                if kind == "profile":
                    doc = _with(doc, "energy.profile", True)
                if kind == "recovery":
                    doc = _with(doc, "recovery.ratios", [0.2])
                doc = _with(doc, dotted, [value] if kind == "list" else value)
                probes.append(FileProbe("8", f"{dotted}={value} ({label})", doc))
    probes.append(
        FileProbe(
            "8",
            "energy.batch_sizes=[0]",
            _with(_with(base, "energy.profile", True), "energy.batch_sizes", [0]),
        )
    )
    if not c.quick:
        name = "adv-real-run"
        doc = _with(base_experiment(c, name), "eval.tasks", ["no_such_task_adv"])
        doc["pruning"]["ratios"] = [0.0]
        probes.append(
            FileProbe(
                "8",
                "greenprune run (not dry) with a nonexistent task: refused "
                "before a prune job is submitted",
                doc,
                REFUSE,
                ("run", "{file}", "--no-progress"),
                no_jobs_of=name,
                timeout=120,
            )
        )
    return probes


def category_file_check(c: Campaign) -> None:
    """Runs every experiment file through ``greenprune run`` in a worker process."""
    import yaml

    folder = c.home / "files"
    folder.mkdir(exist_ok=True)
    probes = experiment_files(c)
    items = []
    for index, probe in enumerate(probes):
        path = folder / f"file-{index:03d}.yaml"
        if isinstance(probe.content, dict):
            path.write_text(yaml.safe_dump(probe.content, sort_keys=False))
        elif isinstance(probe.content, bytes):
            path.write_bytes(probe.content)
        elif isinstance(probe.content, str):
            path.write_text(probe.content)
        items.append(
            {"args": [a.replace("{file}", str(path)) for a in probe.args], "timeout": probe.timeout}
        )
    jobs = c.home / "file-jobs.json"
    jobs.write_text(json.dumps(items))
    start = 0
    while start < len(items):
        outcomes, stopped_at = _run_file_worker(c, jobs, start, items)
        for index, outcome in outcomes:
            _judge_file(c, probes[index], outcome)
        if stopped_at is None:
            break
        _judge_file(c, probes[stopped_at], None)
        start = stopped_at + 1


def _run_file_worker(
    c: Campaign, jobs: Path, start: int, items: list[dict[str, Any]]
) -> tuple[list[tuple[int, dict[str, Any]]], int | None]:
    """Runs items from ``start``; returns their outcomes and the index that hung (if any)."""
    env = {**os.environ, "GREENPRUNE_TOKEN": c.token, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--file-worker", str(jobs), str(start)],
        cwd=c.home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    outcomes: list[tuple[int, dict[str, Any]]] = []
    index = start
    first = True
    try:
        while index < len(items):
            timeout = items[index]["timeout"] + (30 if first else 0)  # the worker's imports
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                return outcomes, index
            if line is None:
                return outcomes, index if index < len(items) else None
            if not line.startswith("@@ADV "):
                continue
            first = False
            outcome = json.loads(line[6:])
            outcomes.append((outcome["index"], outcome))
            index = outcome["index"] + 1
        return outcomes, None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _judge_file(c: Campaign, probe: FileProbe, outcome: dict[str, Any] | None) -> None:
    label = f"{' '.join(a for a in probe.args if a != '{file}')} FILE: {probe.label}"
    if outcome is None:
        c.record(probe.category, label, BAD, f"no answer within {probe.timeout:.0f} s (hang)")
        return
    text = outcome["out"] + outcome["err"]
    if outcome["traceback"]:
        c.record(probe.category, label, BAD, "traceback: " + outcome["traceback"][-300:])
        return
    if "Traceback" in text:
        c.record(probe.category, label, BAD, "printed a traceback: " + text[-300:])
        return
    if probe.no_jobs_of:
        submitted = _prune_jobs_of(c, probe.no_jobs_of)
        if submitted:
            c.record(
                probe.category,
                label,
                BAD,
                f"{submitted} prune job(s) submitted before the refusal (exit "
                f"{outcome['rc']}): {outcome['err'].strip()[-200:]}",
            )
            return
    if probe.expect == ACCEPT:
        ok = outcome["rc"] == 0
        c.record(
            probe.category,
            label,
            ACCEPTED if ok else BAD,
            "" if ok else f"a valid file was refused (exit {outcome['rc']}): {text[-200:]}",
        )
        return
    if outcome["rc"] == 0:
        c.record(
            probe.category,
            label,
            BAD,
            f"accepted (exit 0 in {outcome['wall']:.2f} s); the dry-run printed a plan",
        )
        return
    slow = outcome["cpu"] >= 1.0 or outcome["wall"] >= 5.0
    if slow and not probe.no_jobs_of:
        c.record(
            probe.category,
            label,
            BAD,
            f"refused, but slowly: {outcome['wall']:.2f} s wall, {outcome['cpu']:.2f} s CPU",
        )
        return
    c.record(probe.category, label, CLEAN)


def _prune_jobs_of(c: Campaign, experiment: str) -> int:
    from greenprune.api.pruning.v1 import pruning_pb2

    code, _, response = c.raw(
        "pruning",
        "ListPruneJobs",
        pruning_pb2.ListPruneJobsRequest(experiment=experiment, page_size=1000),
    )
    if code != grpc.StatusCode.OK or response is None:
        return 0
    jobs = pruning_pb2.ListPruneJobsResponse.FromString(response).jobs
    for job in jobs:
        c.raw("pruning", "CancelPruneJob", pruning_pb2.CancelPruneJobRequest(name=job.name))
    return len(jobs)


def file_worker(jobs: Path, start: int) -> int:
    """Runs ``greenprune`` in this process on each item from ``start``; one JSON line each."""
    from greenprune.client import cli

    items = json.loads(jobs.read_text())
    real_stdout = sys.stdout
    for index in range(start, len(items)):
        out, err = io.StringIO(), io.StringIO()
        tb = ""
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(items[index]["args"])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - a traceback is what we look for
                rc, tb = -1, traceback.format_exc()
        outcome = {
            "index": index,
            "rc": rc,
            "traceback": tb,
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "out": out.getvalue()[-2000:],
            "err": err.getvalue()[-2000:],
        }
        real_stdout.write("@@ADV " + json.dumps(outcome) + "\n")
        real_stdout.flush()
    return 0


# -- category 9: failures inside a library ---------------------------------------------------------


def start_library_failure(c: Campaign) -> str | None:
    """Submits an eval job whose context lm-eval encodes to no tokens; returns its name."""
    folder = c.home / "tasks-library" / "empty-context"
    spec = eval_spec(tasks=[LIBRARY_TASK], task_paths=[str(folder)], idle_seconds=0.0)
    request = c.request("eval", "CreateEvalJob", request_id="library-1", spec=spec)
    answer = c.call(
        "9",
        "eval job on a task whose context encodes to no tokens",
        "eval",
        "CreateEvalJob",
        request,
        ACCEPT,
    )
    return c.created[-1][1] if answer.code == grpc.StatusCode.OK else None


def finish_library_failure(c: Campaign, name: str | None) -> None:
    """The job's error names the task, the subject, the exception type and file:line."""
    if name is None:
        return
    job = c.wait_job("eval", name, timeout=60 if c.quick else 240)
    label = f"{name}: error of a failure inside lm-eval"
    if job is None or job.status.state < 3:
        c.record("9", label, BAD, "the job did not finish in time")
        return
    if job.status.state == 3:
        c.record("9", label, ACCEPTED)
        c.note("[9] the empty-context job SUCCEEDED: this lm-eval does not fail on it")
        return
    message = job.status.error.message
    missing = [
        what
        for what, ok in (
            ("the task", LIBRARY_TASK in message),
            ("the model or checkpoint", REFERENCE in message or "checkpoint" in message),
            (
                "the exception type",
                re.search(r"\b[A-Z]\w*(Error|Exception)\b", message) is not None,
            ),
            ("file:line", re.search(r"\w+\.py:\d+", message) is not None),
            ("no traceback", "Traceback" not in message),
        )
        if not ok
    ]
    if missing:
        c.record("9", label, BAD, f"the error lacks {', '.join(missing)}: {message[:300]!r}")
    else:
        c.record("9", label, CLEAN)
        c.note(f"[9] job error: {message[:300]}")


# -- random bytes and bad tokens -------------------------------------------------------------------


def category_bytes(c: Campaign) -> None:
    """Random and mutated payloads on every method of every service."""
    per_service = 15 if c.quick else 100
    samples = _valid_samples()
    for kind in c.servers:
        methods = list(c.services[kind].methods)
        for index in range(per_service):
            method = methods[index % len(methods)]  # every method, in turn
            sample = samples.get(method.name)
            if sample and not method.name.startswith("Create") and c.rng.random() < 0.5:
                payload, how = _mutate(c.rng, sample), "mutated"
            else:
                payload, how = c.rng.randbytes(c.rng.randint(0, 256)), "random"
            since = len(c.created)
            c.call(
                "bytes",
                f"{how} {len(payload)} bytes {payload[:16].hex()}...",
                kind,
                method.name,
                payload,
                EITHER,
                timeout=3 if method.server_streaming else 20,
            )
            c.cancel_created(since)


def _valid_samples() -> dict[str, bytes]:
    from greenprune.api.results.v1 import results_pb2 as pb

    prunes, evals, profiles = _records()
    return {
        "RecordEvalRun": pb.RecordEvalRunRequest(run=evals[0]).SerializeToString(),
        "RecordPruneRun": pb.RecordPruneRunRequest(run=prunes[0]).SerializeToString(),
        "RecordProfileRun": pb.RecordProfileRunRequest(run=profiles[0]).SerializeToString(),
        "BatchRecordEvalRuns": pb.BatchRecordEvalRunsRequest(runs=evals[:3]).SerializeToString(),
        "QueryView": pb.QueryViewRequest(view=pb.VIEW_RUNS).SerializeToString(),
        "ExportView": pb.ExportViewRequest(view=pb.VIEW_RUNS, format=1).SerializeToString(),
        "ListEvalRuns": pb.ListEvalRunsRequest(page_size=5, page_token="5").SerializeToString(),
        "ListPruneRuns": pb.ListPruneRunsRequest(page_size=5, page_token="5").SerializeToString(),
    }


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.5 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif choice < 0.75:
            buffer[rng.randint(0, len(buffer)) : rng.randint(0, len(buffer))] = b""
        else:
            position = rng.randint(0, len(buffer))
            buffer[position:position] = rng.randbytes(rng.randint(1, 8))
    return bytes(buffer)


BAD_AUTHORIZATION: list[tuple[str, str | None]] = [
    ("no token", None),
    ("empty header", ""),
    ("'Bearer'", "Bearer"),
    ("'Bearer '", "Bearer "),
    ("wrong token", "Bearer wrong"),
    ("token + x", "Bearer {token}x"),
    ("token minus last char", "Bearer {token_short}"),
    ("token without scheme", "{token}"),
    ("Basic scheme", "Basic {token}"),
    ("4,000 characters", "Bearer " + "a" * 4000),
]
"""authorization metadata that must be UNAUTHENTICATED on every method."""


def category_tokens(c: Campaign) -> None:
    """Every method of every service with each bad authorization header."""
    entries = BAD_AUTHORIZATION if not c.quick else BAD_AUTHORIZATION[:4]
    for kind in c.servers:
        for method in c.services[kind].methods:
            for label, value in entries:
                metadata = (
                    None
                    if value is None
                    else [("authorization", value.format(token=c.token, token_short=c.token[:-1]))]
                )
                c.call(
                    "token",
                    label,
                    kind,
                    method.name,
                    b"",
                    UNAUTH,
                    timeout=10,
                    metadata=metadata,
                    channel=c.bare[kind],
                )


# -- running it ------------------------------------------------------------------------------------


def run_campaign(
    quick: bool = False,
    only: set[str] | None = None,
    seed: int = 0,
    home: Path | None = None,
    say: Callable[[str], None] = print,
) -> Results:
    """Runs the chosen categories (all by default) and returns the tallies and bad outcomes."""
    chosen = set(CATEGORIES) if not only else set(only)
    unknown = chosen - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
    home = home or Path(tempfile.mkdtemp(prefix="greenprune-adversarial-"))
    started = time.monotonic()
    c = Campaign(home, quick=quick, seed=seed, say=say)
    kinds = ["results"]
    if chosen & {"1", "3", "4", "6", "7", "8", "9", "bytes", "token"}:
        kinds += ["pruning", "eval"]
    c.start(kinds)
    say(
        f"services up in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{k} {s.address}" for k, s in c.servers.items())
    )
    background = None
    if "4" in chosen:
        background = threading.Thread(target=category_lost_work, args=(c,), daemon=True)
        background.start()
    library_job = start_library_failure(c) if "9" in chosen else None

    def step(key: str, function: Callable[[Campaign], None]) -> None:
        if key not in chosen:
            return
        begun = time.monotonic()
        try:
            function(c)
        except Exception as exc:  # noqa: BLE001 - a crash of the campaign is reported, not hidden
            c.record(
                key,
                f"category {key} itself",
                BAD,
                f"the campaign crashed: {type(exc).__name__}: {str(exc)[:300]}",
            )
            c.note(traceback.format_exc()[-1500:])
        tally = c.tallies[key]
        say(
            f"[{key}] {CATEGORIES[key]}: {tally.tried} tried, {tally.clean} clean, "
            f"{tally.accepted} accepted, {tally.bad} bad ({time.monotonic() - begun:.1f} s)"
        )

    try:
        step("6", category_health)
        step("token", category_tokens)
        step("1", category_code)
        step("7", category_clean_errors)
        step("3", category_bounds)
        step("2", category_store_writes)
        step("bytes", category_bytes)
        step("8", category_file_check)
        step("5", category_app)
        if "9" in chosen:
            step("9", lambda camp: finish_library_failure(camp, library_job))
        if "1" in chosen or "8" in chosen:
            check_markers(c)
        if background is not None:
            say("waiting for the lost-work scenario (category 4)...")
            background.join(600)
            if background.is_alive():
                c.record("4", "lost-work scenario", BAD, "did not finish within 10 minutes")
            tally = c.tallies["4"]
            say(
                f"[4] {CATEGORIES['4']}: {tally.tried} tried, {tally.accepted} accepted, "
                f"{tally.bad} bad"
            )
        if "2" in chosen:
            step("2", category_store_reads)  # last: after everything else was stored
    finally:
        c.stop()
        with (home / "requests.jsonl").open("w") as log:
            for entry in c.log:
                log.write(json.dumps(entry) + "\n")
    return Results(c.tallies, c.bads, c.notes, time.monotonic() - started, home)


def print_summary(results: Results, console: Any, only: set[str] | None = None) -> None:
    """The table of counts, then each bad outcome and the notes."""
    from rich.table import Table

    table = Table(title="adversarial campaign (issue 16)", header_style="bold")
    for column in ("#", "category", "requests tried", "clean errors", "accepted", "bad"):
        table.add_column(column, justify="right" if column not in ("#", "category") else "left")
    total = Tally()
    for key, name in CATEGORIES.items():
        tally = results.tallies[key]
        if only and key not in only:
            continue
        table.add_row(
            key, name, str(tally.tried), str(tally.clean), str(tally.accepted), str(tally.bad)
        )
        for attr in ("tried", "clean", "accepted", "bad"):
            setattr(total, attr, getattr(total, attr) + getattr(tally, attr))
    table.add_row(
        "",
        "total",
        str(total.tried),
        str(total.clean),
        str(total.accepted),
        str(total.bad),
        style="bold",
    )
    console.print(table)
    console.print(f"wall time {results.seconds:.0f} s")
    if results.bads:
        console.print(f"\n{len(results.bads)} bad outcome(s):", style="bold red")
        for bad in results.bads:
            console.print(
                f"  [{bad.category}] {bad.request}\n      -> {bad.what}",
                markup=False,
                highlight=False,
            )
    if results.notes:
        console.print("\nnotes:")
        for text in results.notes:
            console.print(f"  {text}", markup=False, highlight=False)


def _quiet_fds(log: Path) -> TextIO:
    """Sends fds 1 and 2 (job processes' and libraries' chatter) to ``log``.

    Returns:
        A stream on the original stdout.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the campaign and prints the summary; 1 when any bad outcome occurred."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--file-worker"]:
        return file_worker(Path(args[1]), int(args[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts and strings")
    parser.add_argument(
        "--only", default="", help="comma-separated categories: " + ",".join(CATEGORIES)
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the random requests")
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    parser.add_argument("--verbose", action="store_true", help="do not silence the services")
    options = parser.parse_args(args)
    only = {part.strip() for part in options.only.split(",") if part.strip()} or None
    from rich.console import Console

    home = Path(tempfile.mkdtemp(prefix="greenprune-adversarial-"))
    out: TextIO = sys.stdout if options.verbose else _quiet_fds(home / "campaign.log")
    console = Console(file=out, highlight=False, width=160)
    results = run_campaign(
        options.quick, only, options.seed, home, say=lambda line: console.print(line, markup=False)
    )
    print_summary(results, console, only)
    if not options.keep and results.ok:
        shutil.rmtree(home, ignore_errors=True)
    else:
        console.print(f"every request and its verdict: {home / 'requests.jsonl'}")
        if not options.verbose:
            console.print(f"service and job output: {home / 'campaign.log'}")
    return 0 if results.ok else 1


if __name__ == "__main__":
    sys.exit(main())
