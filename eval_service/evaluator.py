"""Accuracy with lm-eval and energy with CodeCarbon, per task, for an already loaded model.

A run: validate the config, wrap the model in lm-eval's ``HFLM`` and that in a
:class:`~eval_service.metered_lm.MeteredLM`; warm up on a few batches of each task's requests
(unmetered); measure the idle baseline; then run each task ``repeats`` times with one
``lm_eval.simple_evaluate`` per run (response cache off), metering only the model's calls. The
metrics come from the first repeat and must agree across repeats; the energy of the repeats is
summarised by :func:`greenprune.core.energy.summarize`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from eval_service.profile import check_rounds_and_threads
from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.energy.meter import EnergyMeter
from greenprune.core.energy.readings import EnergyReport, summarize
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import (
    DEVICE_DEFAULT,
    EVAL_SPEC,
    MAX_LIST_ITEMS,
    PROFILE_BATCH_SIZE,
    PROFILE_SPEC,
    check,
    check_device,
    check_text,
    default,
)

_CUDA = re.compile(r"cuda(?::(\d+))?")
_VERSIONED = ("lm_eval", "codecarbon", "torch", "transformers")
_BOOTSTRAP_ITERS = 100_000  # lm-eval's default, for stderrs of metrics without a closed form


@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation job runs.

    Attributes:
        tasks: lm-eval task, group or tag names.
        task_paths: Folders of task YAML to index besides lm-eval's and greenprune's own.
        task_sources: Task sources (``taskSources/{digest}``) stored in the service's folder.
        num_fewshot: Few-shot examples per prompt (tasks whose config fixes 0 keep 0).
        limit: At most this many documents per task; None for all.
        batch_size: Requests per forward pass.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda:N``.
        repeats: How many times each task's metered run repeats.
        warmup_batches: Batches of each task's requests run unmetered before measuring.
        idle_seconds: Length of the idle baseline; 0 for none (net then equals gross).
        seed: Seed for Python, NumPy, torch and the few-shot sampler.
    """

    tasks: tuple[str, ...]
    task_paths: tuple[str, ...] = ()
    task_sources: tuple[str, ...] = ()
    num_fewshot: int = default(EVAL_SPEC, "num_fewshot")
    limit: int | None = None
    batch_size: int = default(EVAL_SPEC, "batch_size")
    device: str = DEVICE_DEFAULT
    repeats: int = default(EVAL_SPEC, "repeats")
    warmup_batches: int = default(EVAL_SPEC, "warmup_batches")
    idle_seconds: float = default(EVAL_SPEC, "idle_seconds")
    seed: int = default(EVAL_SPEC, "seed")


@dataclass(frozen=True)
class MetricValue:
    """One metric of one lm-eval task (or group).

    Attributes:
        task: The lm-eval task or group that reported it.
        metric: Metric name, with the filter appended (``exact_match,strict-match``) unless it
            is lm-eval's ``none`` filter.
        value: The metric's value.
        stderr: Its standard error, None when lm-eval gives none.
        samples: Documents it was computed on.
    """

    task: str
    metric: str
    value: float
    stderr: float | None
    samples: int


@dataclass(frozen=True)
class TaskOutcome:
    """Accuracy and energy of one requested task.

    Attributes:
        task: The requested task name.
        metrics: Its metrics (and its subtasks' when it is a group).
        samples: Documents evaluated (summed over subtasks).
        energy: Energy of the model's work over the repeats.
        versions: Versions of lm-eval, CodeCarbon, torch and transformers.
        items: Each document's score under each metric, from the first repeat.
    """

    task: str
    metrics: list[MetricValue]
    samples: int
    energy: EnergyReport
    versions: dict[str, str]
    items: list[eval_pb2.ItemScore] = field(default_factory=list)

    def to_pb(self) -> eval_pb2.TaskResult:
        """The TaskResult record of this outcome (versions travel with the EvalResult)."""
        return eval_pb2.TaskResult(
            task=self.task,
            samples=self.samples,
            energy=self.energy,
            items=self.items,
            metrics=[
                eval_pb2.MetricValue(**{k: v for k, v in asdict(m).items() if v is not None})
                for m in self.metrics
            ],
        )


def noop(stage: str, fraction: float) -> None:
    """Progress callback that ignores its arguments."""


def resolve_device(device: str) -> str:
    """Turn a device spec into a torch device string.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        ``cpu`` or ``cuda:N``; ``auto`` means ``cuda:0`` when CUDA is available, else ``cpu``.

    Raises:
        InvalidArgumentError: ``spec.device`` for an unknown device or one this machine lacks.
    """
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    match = _CUDA.fullmatch(device)
    if match is None:
        raise InvalidArgumentError(
            "spec.device", f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda:N'"
        )
    if not torch.cuda.is_available():
        raise InvalidArgumentError("spec.device", f"{device!r} requested but CUDA is unavailable")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise InvalidArgumentError(
            "spec.device", f"{device!r} requested but only {torch.cuda.device_count()} GPUs exist"
        )
    return f"cuda:{index}"


def validate_config(config: EvalConfig, task_manager: Any) -> None:
    """Check a config before any work starts.

    Args:
        config: The job's config.
        task_manager: Anything with ``all_tasks`` (an lm-eval ``TaskManager``) listing the
            task names the job may use.

    Raises:
        InvalidArgumentError: Naming the first offending field (``spec.tasks[i]``,
            ``spec.task_paths[i]``, ``spec.num_fewshot``, ``spec.limit``, ``spec.batch_size``,
            ``spec.device``, ``spec.repeats``, ``spec.warmup_batches``, ``spec.idle_seconds``).
    """
    if not config.tasks:
        raise InvalidArgumentError("spec.tasks", "name at least one task")
    for field_name in ("tasks", "task_paths", "task_sources"):
        values = getattr(config, field_name)
        if len(values) > MAX_LIST_ITEMS:
            raise InvalidArgumentError(
                f"spec.{field_name}", f"lists {len(values)} entries (at most {MAX_LIST_ITEMS})"
            )
        for index, value in enumerate(values):
            check_text(f"spec.{field_name}[{index}]", value)
    check(config, EVAL_SPEC)
    check_device("spec.device", config.device)
    known = list(task_manager.all_tasks)
    known_set = set(known)
    for index, name in enumerate(config.tasks):
        if name not in known_set:
            close = difflib.get_close_matches(name, known, n=5)
            hint = ", ".join(close) if close else "none"
            raise InvalidArgumentError(
                f"spec.tasks[{index}]", f"unknown task {name!r}; close names: {hint}"
            )
        if name in config.tasks[:index]:
            raise InvalidArgumentError(f"spec.tasks[{index}]", f"task {name!r} is listed twice")
    for index, path in enumerate(config.task_paths):
        if not Path(path).is_dir():
            raise InvalidArgumentError(f"spec.task_paths[{index}]", f"{path!r} is not a folder")
    resolve_device(config.device)


def validate_profile(
    spec: eval_pb2.EvalSpec, checkpoints_dir: Path, check_exists: bool = True
) -> None:
    """Checks a (normalized) profile spec: bounds, devices, and that every checkpoint exists.

    ``check_exists=False`` (a ``validate_only`` request) checks the ids' form only.

    Raises:
        InvalidArgumentError: Naming the first offending field.
        NotFoundError: A checkpoint does not exist.
    """
    from greenprune.core import checkpoint

    profile = spec.profile
    if spec.tasks or spec.WhichOneof("subject"):
        raise InvalidArgumentError("spec.profile", "a profile job takes no tasks and no subject")
    ids = list(profile.checkpoint_ids)
    if not ids or len(ids) > MAX_LIST_ITEMS:
        raise InvalidArgumentError(
            "spec.profile.checkpoint_ids", f"name 1 to {MAX_LIST_ITEMS} checkpoints"
        )
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError("spec.profile.checkpoint_ids", "lists a checkpoint twice")
    check(spec, EVAL_SPEC)
    check(spec, PROFILE_SPEC)
    check_rounds_and_threads(spec)
    sizes = list(profile.batch_sizes)
    if len(sizes) > MAX_LIST_ITEMS or len(set(sizes)) != len(sizes):
        raise InvalidArgumentError(
            "spec.profile.batch_sizes", f"lists at most {MAX_LIST_ITEMS} distinct sizes"
        )
    for index, size in enumerate(sizes):
        if not PROFILE_BATCH_SIZE.allows(size):
            raise InvalidArgumentError(
                f"spec.profile.batch_sizes[{index}]",
                f"{size} is not {PROFILE_BATCH_SIZE.describe()}",
            )
    check_device("spec.device", spec.device)
    resolve_device(spec.device)
    for index, checkpoint_id in enumerate(ids):
        field = f"spec.profile.checkpoint_ids[{index}]"
        check_text(field, checkpoint_id)
        if check_exists:
            checkpoint.checkpoint_dir(checkpoints_dir, checkpoint_id, field)
        else:
            checkpoint.validate_checkpoint_id(checkpoint_id, field)


def run_eval(
    model: Any,
    tokenizer: Any,
    config: EvalConfig,
    *,
    task_manager: Any,
    workdir: Path,
    progress: Callable[[str, float], None] = noop,
) -> list[TaskOutcome]:
    """Evaluate a loaded model on every task of ``config`` with metered energy.

    Args:
        model: A Hugging Face causal LM (moved to the resolved device here).
        tokenizer: Its tokenizer.
        config: What to run.
        task_manager: The lm-eval ``TaskManager`` that knows the tasks.
        workdir: The job's folder (CodeCarbon's output folder; nothing is written there).
        progress: Called with (stage, overall fraction) at the start of each stage: ``warmup``,
            ``quiet-check`` (waiting for other processes to leave the CPUs alone),
            ``idle-baseline``, ``evaluating <task> (repeat i/N)``.

    Returns:
        One outcome per task, in the config's order.

    Raises:
        InvalidArgumentError: For a bad config (see :func:`validate_config`).
        RuntimeError: When repeats disagree on a metric, or lm-eval returns nothing.
        Exception: Whatever lm-eval raises.
    """
    from lm_eval.models.huggingface import HFLM

    from eval_service.metered_lm import MeteredLM

    validate_config(config, task_manager)
    device = resolve_device(config.device)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    model.eval()
    inner = HFLM(
        pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=config.batch_size
    )
    meter = EnergyMeter(device, workdir)
    meter.prepare()
    lm = MeteredLM(inner, tokenizer, meter)
    steps = _Steps(config, progress)

    if config.warmup_batches > 0:
        steps.begin("warmup")
        warm_requests = config.warmup_batches * config.batch_size
        warm_limit = warm_requests if config.limit is None else min(warm_requests, config.limit)
        lm.warmup(warm_requests)
        try:
            for task in config.tasks:
                _evaluate(lm, task, config, task_manager, warm_limit, bootstrap_iters=0)
                steps.advance()
        finally:
            lm.warmup(None)
    steps.begin("quiet-check")
    meter.wait_for_quiet()
    if config.idle_seconds > 0:
        steps.begin("idle-baseline")
        meter.measure_idle(config.idle_seconds)
        steps.advance()

    versions = library_versions()
    outcomes = []
    for task in config.tasks:
        first: list[MetricValue] | None = None
        readings = []
        for repeat in range(1, config.repeats + 1):
            steps.begin(f"evaluating {task} (repeat {repeat}/{config.repeats})")
            lm.reset()
            # Only the first repeat's stderr is reported: later repeats skip the bootstrap.
            bootstrap_iters = _BOOTSTRAP_ITERS if repeat == 1 else 0
            results = _evaluate(
                lm, task, config, task_manager, config.limit, bootstrap_iters, repeat == 1
            )
            metrics = metric_values(results)
            if first is None:
                first, samples, tokens = metrics, sample_count(results), lm.tokens
                items = item_scores(results, task)
            else:
                _check_agreement(task, first, metrics, repeat)
            readings.append(lm.measurement())
            steps.advance()
        report = summarize(readings, meter, tokens=tokens, samples=samples)
        outcomes.append(TaskOutcome(task, first, samples, report, dict(versions), items))
    return outcomes


def metric_values(results: Mapping[str, Any]) -> list[MetricValue]:
    """The metrics of an lm-eval results dict, with their stderr and sample counts."""
    values = []
    for name, entries in results["results"].items():
        samples = _samples_of(name, results)
        for key, value in entries.items():
            metric, sep, filter_name = key.partition(",")
            if not sep or metric.endswith("_stderr") or not _is_number(value):
                continue
            stderr = entries.get(f"{metric}_stderr,{filter_name}")
            values.append(
                MetricValue(
                    task=name,
                    metric=metric if filter_name == "none" else key,
                    value=float(value),
                    stderr=float(stderr) if _is_number(stderr) else None,
                    samples=samples,
                )
            )
    return values


def item_scores(results: Mapping[str, Any], task: str) -> list[eval_pb2.ItemScore]:
    """Each document's numeric score under each metric (lm-eval's logged samples).

    Subtasks of a group name their metric ``subtask/metric`` so document ids stay unique.
    Scores that are not single numbers (perplexity's pairs) are left out.
    """
    scores = []
    for name, samples in (results.get("samples") or {}).items():
        metrics = {
            key.partition(",")[0]
            for key in results["results"].get(name, {})
            if "," in key and not key.partition(",")[0].endswith("_stderr")
        }
        prefix = "" if name == task else f"{name}/"
        for sample in samples:
            for metric in sorted(metrics):
                value = sample.get(metric)
                if _is_number(value):
                    scores.append(
                        eval_pb2.ItemScore(
                            doc_id=int(sample["doc_id"]), metric=prefix + metric, value=float(value)
                        )
                    )
    return scores


def sample_count(results: Mapping[str, Any]) -> int:
    """Documents evaluated, summed over the leaf tasks of an lm-eval results dict."""
    return sum(int(n["effective"]) for n in results.get("n-samples", {}).values())


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the measurements depend on."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# --------------------------------------------------------------------------- internals


class _Steps:
    """Progress through warm-up, baseline and the repeats, as an overall fraction."""

    def __init__(self, config: EvalConfig, progress: Callable[[str, float], None]) -> None:
        self._progress = progress
        self._done = 0
        warmup = len(config.tasks) if config.warmup_batches > 0 else 0
        idle = 1 if config.idle_seconds > 0 else 0
        self._total = warmup + idle + len(config.tasks) * config.repeats

    def begin(self, stage: str) -> None:
        self._progress(stage, self._done / self._total)

    def advance(self) -> None:
        self._done += 1


def _evaluate(
    lm: Any,
    task: str,
    config: EvalConfig,
    task_manager: Any,
    limit: int | None,
    bootstrap_iters: int,
    log_samples: bool = False,
) -> dict[str, Any]:
    from lm_eval import simple_evaluate

    from eval_service.errors import library_failures

    with library_failures(f"task {task!r}"):
        results = simple_evaluate(
            model=lm,
            tasks=[task],
            num_fewshot=config.num_fewshot,
            limit=limit,
            task_manager=task_manager,
            use_cache=None,
            cache_requests=False,
            log_samples=log_samples,
            bootstrap_iters=bootstrap_iters,
            random_seed=config.seed,
            numpy_random_seed=config.seed,
            torch_random_seed=config.seed,
            fewshot_random_seed=config.seed,
        )
    if results is None:
        raise RuntimeError(f"lm-eval returned no results for task {task!r}")
    return results


def _check_agreement(
    task: str, first: list[MetricValue], other: list[MetricValue], repeat: int
) -> None:
    expected = {(m.task, m.metric): m.value for m in first}
    found = {(m.task, m.metric): m.value for m in other}
    if expected.keys() != found.keys():
        raise RuntimeError(f"task {task!r}: repeat {repeat} reported different metrics")
    for key, value in expected.items():
        if not math.isclose(value, found[key], rel_tol=1e-6, abs_tol=1e-9) and not (
            math.isnan(value) and math.isnan(found[key])
        ):
            raise RuntimeError(
                f"task {task!r}: {key[1]} of {key[0]} was {value} in repeat 1 but "
                f"{found[key]} in repeat {repeat}; the evaluation is not deterministic"
            )


def _samples_of(name: str, results: Mapping[str, Any]) -> int:
    counts = results.get("n-samples", {})
    if name in counts:
        return int(counts[name]["effective"])
    children = results.get("group_subtasks", {}).get(name, [])
    return sum(_samples_of(child, results) for child in children if child != name)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
