"""eval_service.evaluator: lm-eval accuracy with metered energy, on tiny models and local tasks."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval_service.errors import LibraryError
from eval_service.evaluator import (
    EvalConfig,
    MetricValue,
    TaskOutcome,
    _check_agreement,
    resolve_device,
    run_eval,
    validate_config,
)
from greenprune.core.energy.readings import METHODS
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.stats import Interval

WORDS = ["red", "blue", "green", "cat", "dog", "fox", "the", "is", "a", "on"]


# --------------------------------------------------------------------------- fixtures


def _write_task(folder: Path, name: str, docs: int, words: int, data: Path | None = None) -> None:
    """A multiple-choice task of random sentences (absolute data path, see FACTS.md)."""
    if data is None:
        rng = random.Random(name)
        data = folder / f"{name}.jsonl"
        with data.open("w") as handle:
            for _ in range(docs):
                question = " ".join(rng.choice(WORDS) for _ in range(words))
                choices = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(4)]
                record = {"question": question, "choices": choices, "answer": rng.randrange(4)}
                handle.write(json.dumps(record) + "\n")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data.resolve()}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The local tasks plus a user folder of tasks.

    The folder holds long random sentences, a task whose data file is missing and a group
    that aggregates two local tasks.
    """
    from eval_service.tasks import task_manager as local_task_manager

    folder = tmp_path_factory.mktemp("user-tasks")
    _write_task(folder, "gp_unit_long", docs=150, words=30)
    _write_task(folder, "gp_unit_broken", docs=0, words=0, data=folder / "missing.jsonl")
    (folder / "gp_unit_group.yaml").write_text(
        "group: gp_unit_group\ntask: [greenprune_facts, greenprune_arith]\n"
        "aggregate_metric_list:\n  - metric: acc\n    aggregation: mean\n    weight_by_size: true\n"
    )
    return local_task_manager([folder])


@pytest.fixture(scope="module")
def reference(reference_model_dir: Path) -> tuple[Any, Any]:
    """The reference tiny Llama and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(reference_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(reference_model_dir)


@pytest.fixture(scope="module")
def model(reference: tuple[Any, Any]) -> Any:
    return reference[0]


@pytest.fixture(scope="module")
def tokenizer(reference: tuple[Any, Any]) -> Any:
    return reference[1]


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread, so other processes on the shared cores add little noise.

    With two OpenMP threads on two cores, a core taken by another process makes the threads
    spin-wait, which inflates both the time and this process's CPU energy.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def accuracy_run(
    model: Any, tokenizer: Any, task_manager: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[TaskOutcome], list[tuple[str, float]]]:
    stages: list[tuple[str, float]] = []
    config = EvalConfig(
        tasks=("greenprune_facts",),
        limit=40,
        batch_size=8,
        device="cpu",
        repeats=2,
        warmup_batches=1,
        idle_seconds=0.3,
    )
    outcomes = run_eval(
        model,
        tokenizer,
        config,
        task_manager=task_manager,
        workdir=tmp_path_factory.mktemp("work"),
        progress=lambda stage, fraction: stages.append((stage, fraction)),
    )
    return outcomes, stages


# --------------------------------------------------------------------------- accuracy


def test_accuracy_equals_a_direct_lm_eval_run(
    accuracy_run: tuple[list[TaskOutcome], Any], model: Any, tokenizer: Any, task_manager: Any
) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    direct = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8),
        tasks=["greenprune_facts"],
        limit=40,
        num_fewshot=0,
        task_manager=task_manager,
    )["results"]["greenprune_facts"]
    outcome = accuracy_run[0][0]
    by_metric = {m.metric: m for m in outcome.metrics}
    assert set(by_metric) == {"acc", "acc_norm"}
    for metric in ("acc", "acc_norm"):
        assert by_metric[metric] == MetricValue(
            task="greenprune_facts",
            metric=metric,
            value=pytest.approx(direct[f"{metric},none"]),
            stderr=pytest.approx(direct[f"{metric}_stderr,none"]),
            samples=40,
        )
    assert outcome.task == "greenprune_facts" and outcome.samples == 40


def test_progress_walks_through_the_stages(accuracy_run: tuple[Any, list]) -> None:
    stages = accuracy_run[1]
    assert [stage for stage, _ in stages] == [
        "warmup",
        "quiet-check",
        "idle-baseline",
        "evaluating greenprune_facts (repeat 1/2)",
        "evaluating greenprune_facts (repeat 2/2)",
    ]
    fractions = [fraction for _, fraction in stages]
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] < 1.0


def test_energy_record_is_complete(accuracy_run: tuple[list[TaskOutcome], Any]) -> None:
    outcome = accuracy_run[0][0]
    energy = outcome.energy
    by_name = {c.component: c for c in energy.components}
    assert {"cpu", "ram"} <= by_name.keys()
    for component in energy.components:
        assert component.method in METHODS
        assert component.net_joules.median <= component.gross_joules.median
        assert component.idle_watts >= 0.0
    assert by_name["ram"].method == "constant-estimate" and by_name["ram"].estimated
    # Without a power counter the headline is the CPU time of the work (an estimate).
    headline = by_name[energy.headline_component]
    assert (
        energy.headline_component in ("cpu", "cpu-time")
        and energy.net_joules == headline.net_joules
    )
    assert energy.energy_method == headline.method and energy.cpu_seconds.median > 0
    assert energy.repeats == 2 and len(energy.repeat_net_joules) == 2
    assert energy.samples == 40 and energy.tokens > 40 * 4
    assert "other processes before measuring: " in energy.hardware
    assert energy.joules_per_token > 0 and energy.joules_per_sample > 0
    assert energy.tokens_per_second.median > 0 and energy.wall_seconds.median > 0
    assert energy.peak_rss_bytes > 0 and energy.peak_cuda_bytes == 0
    assert energy.device_name and energy.hardware and energy.gpu_shared is False
    assert energy.estimated == headline.estimated
    assert set(outcome.versions) == {"lm_eval", "codecarbon", "torch", "transformers"}


def test_group_reports_its_subtasks_and_their_samples(
    model: Any, tokenizer: Any, task_manager: Any, tmp_path: Path
) -> None:
    config = EvalConfig(
        tasks=("gp_unit_group",),
        limit=10,
        device="cpu",
        repeats=1,
        warmup_batches=0,
        idle_seconds=0,
    )
    (outcome,) = run_eval(model, tokenizer, config, task_manager=task_manager, workdir=tmp_path)
    samples = {(m.task, m.metric): m.samples for m in outcome.metrics}
    assert samples[("greenprune_facts", "acc")] == 10 and samples[("greenprune_arith", "acc")] == 10
    assert samples[("gp_unit_group", "acc")] == 20
    assert outcome.samples == 20
    assert outcome.energy.components[0].idle_watts == 0.0


def test_lm_eval_failure_is_raised(
    model: Any, tokenizer: Any, task_manager: Any, tmp_path: Path
) -> None:
    config = EvalConfig(tasks=("gp_unit_broken",), device="cpu", repeats=1, idle_seconds=0)
    with pytest.raises(LibraryError) as caught:
        run_eval(model, tokenizer, config, task_manager=task_manager, workdir=tmp_path)
    message = str(caught.value)
    assert "task 'gp_unit_broken'" in message and "FileNotFoundError" in message
    assert "missing.jsonl" in message and ".py:" in message  # the library's file and line


def test_repeats_that_disagree_are_an_error() -> None:
    first = [MetricValue("t", "acc", 0.5, 0.1, 10)]
    _check_agreement("t", first, [MetricValue("t", "acc", 0.5, 0.1, 10)], 2)
    with pytest.raises(RuntimeError, match="not deterministic"):
        _check_agreement("t", first, [MetricValue("t", "acc", 0.6, 0.1, 10)], 2)
    with pytest.raises(RuntimeError, match="different metrics"):
        _check_agreement("t", first, [MetricValue("t", "f1", 0.5, 0.1, 10)], 2)


# --------------------------------------------------------------------------- energy follows work


WORK_ORDER = (60, 120, 60)
"""The limits of the energy runs, in order: the small runs bracket the large one in time, so a
change in the machine's load during the test (a neighbouring test starting) falls on both sizes
alike instead of on one."""


@pytest.fixture(scope="module")
def work_runs(
    one_thread: None,
    model: Any,
    tokenizer: Any,
    task_manager: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[int, list[TaskOutcome]]:
    runs: dict[int, list[TaskOutcome]] = {limit: [] for limit in WORK_ORDER}
    for index, limit in enumerate(WORK_ORDER):
        config = EvalConfig(
            tasks=("gp_unit_long",),
            limit=limit,
            batch_size=8,
            device="cpu",
            repeats=3,
            warmup_batches=1,
            idle_seconds=0.5,
        )
        workdir = tmp_path_factory.mktemp(f"work{index}-{limit}")
        (outcome,) = run_eval(model, tokenizer, config, task_manager=task_manager, workdir=workdir)
        runs[limit].append(outcome)
    return runs


WORK_RATIO_BAND = (1.5, 2.5)
"""Where the energy of twice the samples must fall, as a multiple of the energy of once: it tells
energy that follows the work (2) from a fixed cost (1), and leaves a quarter either way for what
a neighbouring test moves (its memory traffic slows the metered thread: a repeat beside it has
measured 1.4 times its partners on 2 cores)."""


def test_twice_the_samples_cost_twice_the_net_energy(
    work_runs: dict[int, list[TaskOutcome]],
) -> None:
    smalls, (large,) = [run.energy for run in work_runs[60]], [run.energy for run in work_runs[120]]
    assert {small.samples for small in smalls} == {60} and large.samples == 120
    assert large.tokens / smalls[0].tokens == pytest.approx(2.0, rel=0.05)
    assert min(small.wall_seconds.median for small in smalls) > 0.3  # above the overheads
    # Medians of the pooled repeats (six small, three large): one disturbed repeat moves neither.
    small_joules = statistics.median(j for small in smalls for j in small.repeat_net_joules)
    large_joules = statistics.median(large.repeat_net_joules)
    repeats = [small.repeat_net_joules for small in smalls] + [large.repeat_net_joules]
    low, high = WORK_RATIO_BAND
    assert low < large_joules / small_joules < high, f"net joules of the repeats: {repeats}"
    small_per_token = small_joules / smalls[0].tokens
    assert low / 2 < (large_joules / large.tokens) / small_per_token < high / 2, repeats


def test_repeats_give_intervals_that_contain_the_median(
    work_runs: dict[int, list[TaskOutcome]],
) -> None:
    for outcome in [run for runs in work_runs.values() for run in runs]:
        energy = outcome.energy
        intervals: list[Interval] = [
            energy.net_joules,
            energy.gross_joules,
            energy.wall_seconds,
            energy.tokens_per_second,
        ]
        intervals += [c.net_joules for c in energy.components]
        for value in intervals:
            assert value.count == 3 and value.method == "student-t-mean"
            assert value.low <= value.median <= value.high
        assert sorted(energy.repeat_net_joules)[1] == energy.net_joules.median


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"tasks": ()}, "spec.tasks", "at least one"),
        ({"tasks": ("greenprune_factz",)}, "spec.tasks[0]", "close names: greenprune_facts"),
        ({"tasks": ("greenprune_facts", "zzz_qqq")}, "spec.tasks[1]", "unknown task 'zzz_qqq'"),
        ({"tasks": ("greenprune_facts", "greenprune_facts")}, "spec.tasks[1]", "twice"),
        ({"task_paths": ("/no/such/folder",)}, "spec.task_paths[0]", "not a folder"),
        ({"num_fewshot": -1}, "spec.num_fewshot", "-1 is not in [0, 32]"),
        ({"limit": 0}, "spec.limit", "0 is not in [1, 1000000]"),
        ({"limit": -5}, "spec.limit", "is not in [1, 1000000]"),
        ({"batch_size": 0}, "spec.batch_size", "0 is not in [1, 1024]"),
        ({"device": "tpu"}, "spec.device", "unknown device"),
        ({"device": "cuda:99"}, "spec.device", "cuda:99"),
        ({"repeats": 0}, "spec.repeats", "0 is not in [1, 100]"),
        ({"warmup_batches": -1}, "spec.warmup_batches", "is not in [0, 64]"),
        ({"idle_seconds": -1.0}, "spec.idle_seconds", "is not in [0, 120]"),
        ({"idle_seconds": 1e9}, "spec.idle_seconds", "is not in [0, 120]"),
        ({"repeats": 2147483647}, "spec.repeats", "is not in [1, 100]"),
        ({"tasks": ("x" * 300,)}, "spec.tasks[0]", "at most 256"),
        ({"device": "mps"}, "spec.device", "unknown device"),
        ({"idle_seconds": math.nan}, "spec.idle_seconds", "nan is not in [0, 120]"),
    ],
)
def test_bad_config_names_the_field(
    task_manager: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    config = EvalConfig(**{"tasks": ("greenprune_facts",), "device": "cpu", **changes})
    with pytest.raises(InvalidArgumentError) as caught:
        validate_config(config, task_manager)
    assert caught.value.field == field
    assert message in caught.value.message


def test_good_config_passes_and_run_eval_validates_first(
    task_manager: Any, model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    validate_config(EvalConfig(tasks=("greenprune_facts", "gp_unit_group"), limit=3), task_manager)
    with pytest.raises(InvalidArgumentError) as caught:
        run_eval(
            model,
            tokenizer,
            EvalConfig(tasks=("greenprune_facts",), repeats=0),
            task_manager=task_manager,
            workdir=tmp_path,
        )
    assert caught.value.field == "spec.repeats"
    assert list(tmp_path.iterdir()) == []


def test_auto_device_is_cuda_when_present_else_cpu() -> None:
    import torch

    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"


# --------------------------------------------------------------------------- metered LM


@pytest.fixture(scope="module")
def metered(model: Any, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from lm_eval.models.huggingface import HFLM

    from eval_service.metered_lm import MeteredLM
    from greenprune.core.energy.meter import EnergyMeter

    inner = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    return inner, MeteredLM(inner, tokenizer, EnergyMeter("cpu", tmp_path_factory.mktemp("m")))


def _instance(kind: str, arguments: tuple, index: int) -> Any:
    from lm_eval.api.instance import Instance

    return Instance(request_type=kind, doc={}, arguments=arguments, idx=index)


def _tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_metered_calls_return_the_inner_results_and_count_tokens(
    metered: tuple[Any, Any], tokenizer: Any
) -> None:
    inner, lm = metered
    pairs = [("the cat is", " red"), ("the cat is", " blue"), ("a dog on the", " fox is red")]
    requests = [_instance("loglikelihood", pair, i) for i, pair in enumerate(pairs)]
    lm.reset()
    assert lm.loglikelihood(requests) == inner.loglikelihood(requests, disable_tqdm=True)
    expected = sum(_tokens(tokenizer, c) + _tokens(tokenizer, x) for c, x in pairs)
    assert (lm.tokens, lm.requests, len(lm.readings)) == (expected, 3, 1)

    texts = ["the red cat is on the blue dog", "a fox"]
    rolling = [_instance("loglikelihood_rolling", (t,), i) for i, t in enumerate(texts)]
    assert lm.loglikelihood_rolling(rolling) == inner.loglikelihood_rolling(
        rolling, disable_tqdm=True
    )
    expected += sum(_tokens(tokenizer, t) for t in texts)
    assert (lm.tokens, lm.requests, len(lm.readings)) == (expected, 5, 2)

    generation = [_instance("generate_until", ("the cat", {"until": ["\n"], "max_gen_toks": 5}), 0)]
    (output,) = lm.generate_until(generation)
    expected += _tokens(tokenizer, "the cat") + _tokens(tokenizer, output)
    assert lm.tokens == expected and len(lm.readings) == 3
    measurement = lm.measurement()
    assert measurement.wall_seconds == pytest.approx(sum(r.wall_seconds for r in lm.readings))
    assert measurement.joules["cpu"] >= 0 and measurement.metered_seconds > 0


def test_warmup_runs_only_the_first_requests_unmetered(metered: tuple[Any, Any]) -> None:
    inner, lm = metered
    requests = [_instance("loglikelihood", ("the cat is", f" {w}"), i) for i, w in enumerate(WORDS)]
    lm.reset()
    lm.warmup(3)
    try:
        results = lm.loglikelihood(requests)
    finally:
        lm.warmup(None)
    assert results[:3] == inner.loglikelihood(requests[:3], disable_tqdm=True)
    assert results[3:] == [(0.0, False)] * (len(requests) - 3)
    assert (lm.tokens, lm.requests, lm.readings) == (0, 0, [])
