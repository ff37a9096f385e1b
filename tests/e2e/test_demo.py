"""The demo end to end through the real local stack (``greenprune up``), with a small limit.

One module-scoped stack in a temporary GREENPRUNE_HOME on free ports. The tests run in order:

1. the eval service is SIGKILLed while the sweep runs and restarted with ``greenprune up``: the
   runner reports the interrupted step with its reason and exits non-zero;
2. a second run is stopped with Ctrl-C while it waits: it says the jobs keep running;
3. a third run finishes the rest: the table prints and every row is in the store, once;
4. a fourth run submits nothing; an invalid file submits nothing either;
5. every checkpoint has a model card equal to the store's figures; the uniform one exports for
   plain transformers, one with kept layers is refused;
6. ``report --html`` opens in Chromium with the network cut: the chart drawn, every table of
   ``report`` with the same cells;
7. ``experiments/methods.yaml`` (smaller evaluations and profile) runs on the same stack: every
   method gets its points, and every checkpoint its card.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from greenprune.api.common.v1 import jobs_pb2
from greenprune.api.eval.v1 import eval_pb2, eval_pb2_grpc
from greenprune.api.pruning.v1 import pruning_pb2, pruning_pb2_grpc
from greenprune.api.results.v1 import results_pb2, results_pb2_grpc
from greenprune.client.plan import Plan, plan_experiment
from greenprune.client.spec import load_experiment
from greenprune.rpc.client import sync_channel
from tests.app.test_browser import browser  # noqa: F401 - the fixture of the report's test

pytestmark = [pytest.mark.slow(minutes=9), pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
SUCCEEDED, RUNNING = jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_RUNNING
REUSE_JOB_PROCESSES = {
    "GREENPRUNE_PRUNING_REUSE_JOB_PROCESS": "true",
    "GREENPRUNE_EVAL_REUSE_JOB_PROCESS": "true",
}
"""The test stacks run a lane's next job in the process of its last one: a sweep's mechanics as
with a fresh process per job (tests/rpc covers those), without a start (seconds of CPU) per job;
the methods e2e ran in half the wall time and 0.41 of the services' CPU."""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Stack:
    """The environment of one local stack and helpers to drive it."""

    def __init__(self, home: Path, experiment: Path) -> None:
        results, pruning, eval_, app = _free_ports(4)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRUNE_")}
        if "GREENPRUNE_CACHE_DIR" in os.environ:  # where the reference model is cached
            env["GREENPRUNE_CACHE_DIR"] = os.environ["GREENPRUNE_CACHE_DIR"]
        env.update(
            GREENPRUNE_HOME=str(home),
            GREENPRUNE_RESULTS_PORT=str(results),
            GREENPRUNE_PRUNING_PORT=str(pruning),
            GREENPRUNE_EVAL_PORT=str(eval_),
            GREENPRUNE_APP_PORT=str(app),
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            COLUMNS="250",  # the results tables print whole, one row per line
            **REUSE_JOB_PROCESSES,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        )
        self.env = env
        self.home = home
        self.experiment = experiment
        self.addresses = {
            "results": f"127.0.0.1:{results}",
            "pruning": f"127.0.0.1:{pruning}",
            "eval": f"127.0.0.1:{eval_}",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "greenprune.client.cli", *args]

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Starts the CLI as a terminal would: Ctrl-C (SIGINT) interrupts it.

        A shell that starts a job in the background (``make test &``) has it ignore SIGINT,
        and every process it starts inherits that; the runner here gets the default back.
        """
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=ROOT,
            preexec_fn=_default_sigint,
        )

    def pid(self, name: str) -> int:
        return int((self.home / "run" / f"{name}.pid").read_text())

    def prune_jobs(self) -> list[Any]:
        with sync_channel(self.addresses["pruning"]) as chan:
            stub = pruning_pb2_grpc.PruningServiceStub(chan)
            return list(stub.ListPruneJobs(pruning_pb2.ListPruneJobsRequest(page_size=1000)).jobs)

    def eval_jobs(self) -> list[Any]:
        with sync_channel(self.addresses["eval"]) as chan:
            stub = eval_pb2_grpc.EvalServiceStub(chan)
            return list(stub.ListEvalJobs(eval_pb2.ListEvalJobsRequest(page_size=1000)).jobs)

    def runs(self, experiment: str) -> tuple[list[Any], list[Any]]:
        with sync_channel(self.addresses["results"]) as chan:
            stub = results_pb2_grpc.ResultsServiceStub(chan)
            prune = stub.ListPruneRuns(
                results_pb2.ListPruneRunsRequest(experiment=experiment, page_size=1000)
            ).runs
            evals = stub.ListEvalRuns(
                results_pb2.ListEvalRunsRequest(experiment=experiment, page_size=1000)
            ).runs
        return list(prune), list(evals)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("e2e")
    demo = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text())
    # The demo with a small limit; two ratios and two tasks (one accuracy, one perplexity)
    # keep the whole module within about two minutes of jobs on two cores.
    demo["pruning"]["ratios"] = [0.0, 0.4]
    demo["eval"].update(
        tasks=["greenprune_facts", "greenprune_heldout"],
        limit=20,
        repeats=2,
        idle_seconds=0.5,
        warmup_batches=1,
    )
    # A short recovery tune: that the recovered checkpoint is made, evaluated and profiled, not
    # how much it regains (tests/unit/test_recovery.py checks the demo's own settings).
    demo["recovery"]["steps"] = 20
    # A short profile: the mechanics of rounds, not the precision of the demo's windows.
    demo["energy"] = {
        "batch_sizes": [8],
        "prefill_tokens": 32,
        "decode_tokens": 4,
        "rounds": 3,
        "window_seconds": 0.2,
    }
    experiment = folder / "demo.yaml"
    experiment.write_text(yaml.safe_dump(demo, sort_keys=False))
    running = Stack(folder / "home", experiment)
    build = running.cli("reference-model", "build", timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    up = running.cli("up", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert running.addresses["eval"] in up.stdout
    assert str(running.home / "logs") in up.stdout
    try:
        yield running
    finally:
        down = running.cli("down", timeout=120)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def plan(stack: Stack) -> Plan:
    return plan_experiment(load_experiment(stack.experiment))


def test_up_is_idempotent_and_status_shows_every_component(stack: Stack) -> None:
    pids = {name: stack.pid(name) for name in ("results", "pruning", "eval", "app")}
    again = stack.cli("up", timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 4
    assert {name: stack.pid(name) for name in pids} == pids
    status = stack.cli("status")
    assert status.returncode == 0
    assert status.stdout.count("SERVING") == 4
    url = stack.cli("status", "--app-url").stdout.strip()
    assert url == f"http://127.0.0.1:{stack.env['GREENPRUNE_APP_PORT']}"
    for address in stack.addresses.values():  # what the compose healthchecks run
        check = subprocess.run(
            [sys.executable, "-m", "greenprune.rpc.healthcheck", address],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert "SERVING" in check.stdout


def test_killing_the_eval_service_mid_sweep_fails_only_the_interrupted_step(
    stack: Stack, plan: Plan
) -> None:
    runner = stack.start("run", str(stack.experiment), "--no-progress")
    try:

        def one_done_one_running() -> bool:
            states = [job.status.state for job in stack.eval_jobs()]
            return SUCCEEDED in states and RUNNING in states

        _wait_for(one_done_one_running, 600, "an eval job done and another running")
        os.kill(stack.pid("eval"), signal.SIGKILL)
        time.sleep(1.0)
        assert runner.poll() is None, "the runner waits for the service to come back"
        up = stack.cli("up", timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "starting eval" in up.stdout
        out, err = runner.communicate(timeout=900)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 1, out + err
    assert "failed: eval reference:tiny-llama" in err
    assert "interrupted" in err
    jobs = stack.eval_jobs()
    # One job per eval step, and the energy profile (it needs only the checkpoints).
    assert len(jobs) == len(plan.eval_steps) + len(plan.profile_steps)
    failed = [job for job in jobs if job.status.state == jobs_pb2.JOB_STATE_FAILED]
    assert len(failed) == 1
    assert failed[0].status.error.message == "interrupted"
    assert sum(job.status.state == SUCCEEDED for job in jobs) == len(jobs) - 1


def test_ctrl_c_stops_waiting_and_leaves_the_jobs_running(stack: Stack, plan: Plan) -> None:
    before = len(stack.eval_jobs())
    # The EvalService's job processes are held stopped from before the run until 2 s after the
    # interrupt (on a quiet machine the retried job finishes within a poll, and then nothing is
    # left running to leave alone); the service itself keeps answering.
    held = psutil.Process(stack.pid("eval")).children(recursive=True)
    for process in held:
        process.suspend()
    runner = stack.start("run", str(stack.experiment), "--no-progress")
    try:
        _wait_for(lambda: len(stack.eval_jobs()) > before, 120, "the retry to be submitted")
        runner.send_signal(signal.SIGINT)
        time.sleep(2.0)
        for process in held:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        out, err = runner.communicate(timeout=60)
    finally:
        for process in held:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 130, out + err
    assert "keep running" in err
    assert len(stack.eval_jobs()) == before + 1


def test_running_again_finishes_the_rest_with_one_row_per_step(stack: Stack, plan: Plan) -> None:
    before = len(stack.eval_jobs())
    result = stack.cli("run", str(stack.experiment))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(stack.eval_jobs()) == before, "the job Ctrl-C left running was reused"
    for column in ("ratio", "parameters", "accuracy", "net energy", "J/token", "Δ energy"):
        assert column in result.stdout
    for step in plan.eval_steps:
        assert step.task in result.stdout
    prune_runs, eval_runs = stack.runs(plan.experiment)
    assert sorted(run.request_id for run in prune_runs) == sorted(
        step.request_id for step in plan.prune_steps
    )
    assert sorted(run.request_id for run in eval_runs) == sorted(
        step.run_id for step in plan.eval_steps
    )
    for run in eval_runs:
        assert run.checkpoint_id
        assert run.result.metrics, run.request_id
        assert run.result.energy.repeats == 2
    (profile_step,) = plan.profile_steps
    with sync_channel(stack.addresses["results"]) as chan:
        profile = (
            results_pb2_grpc.ResultsServiceStub(chan)
            .GetProfileRun(results_pb2.GetProfileRunRequest(request_id=profile_step.request_id))
            .run
        )
    points = profile.result.points
    checkpoints = {run.result.checkpoint_id for run in prune_runs}
    assert len(checkpoints) == len(profile_step.prunes)  # the recovered 0.4 point included
    assert len(points) == len(checkpoints) * 2 * 1 * 3  # x phases x batch sizes x rounds
    assert {p.checkpoint_id for p in points} == checkpoints
    for round_index in range(3):
        placed = [p for p in points if p.round == round_index and p.phase == "prefill"]
        # Each checkpoint once per round.
        assert sorted(p.position for p in placed) == list(range(len(checkpoints)))
    report = stack.cli("report", "--experiment", plan.experiment, "--format", "csv")
    assert report.returncode == 0, report.stderr
    lines = report.stdout.strip().splitlines()
    assert len(lines) == 1 + len(plan.eval_steps)


def test_a_finished_sweep_submits_nothing(stack: Stack, plan: Plan, tmp_path: Path) -> None:
    prune_jobs = [job.name for job in stack.prune_jobs()]
    eval_jobs = [job.name for job in stack.eval_jobs()]
    again = stack.cli("run", str(stack.experiment), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert f"{len(plan.steps)} already recorded, 0 submitted" in again.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(stack.experiment.read_text().replace("- 0.4", "- 0.95"))
    rejected = stack.cli("run", str(bad))
    assert rejected.returncode == 2
    assert "pruning.ratios[1]: must be < 0.9" in rejected.stderr
    unknown = tmp_path / "unknown.yaml"
    text = stack.experiment.read_text()
    unknown.write_text(text.replace("reference:tiny-llama", "reference:nope"))
    refused = stack.cli("run", str(unknown), "--no-progress")
    assert refused.returncode == 2, refused.stdout + refused.stderr  # the file check refuses it
    assert "models: no reference model 'reference:nope'" in refused.stderr
    assert [job.name for job in stack.prune_jobs()] == prune_jobs
    assert [job.name for job in stack.eval_jobs()] == eval_jobs
    dry = stack.cli("run", str(stack.experiment), "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.count("recorded") >= len(plan.steps)
    cancel = stack.cli("cancel", str(stack.experiment))
    assert cancel.returncode == 0, cancel.stderr
    assert "no queued or running jobs of demo" in cancel.stdout


def assert_cards_match_the_store(stack: Stack, experiment: str) -> None:
    """Every checkpoint of ``experiment`` has a card whose header parses and equals the store.

    Every compressed checkpoint's card carries its verdicts (the findings view's rows); the
    baseline's has none (it is what the others are compared with).
    """
    from greenprune import Client
    from greenprune.core import model_card

    with Client(results=stack.addresses["results"]) as client:
        prune_runs = client.results("prune_runs", experiment=experiment)
        found = client.results("findings", experiment=experiment)
    assert len(prune_runs)
    for run in prune_runs.to_dict("records"):
        folder = stack.home / "checkpoints" / run["checkpoint_id"]
        header = model_card.parse_card((folder / model_card.CARD_NAME).read_text("utf-8"))
        block = header["greenprune"]
        assert header["library_name"] == "transformers"
        assert block["checkpoint_id"] == run["checkpoint_id"]
        assert block["content_hash"] == run["content_hash"]
        assert block["lineage"]["base_model"] == run["model"]
        assert block["lineage"]["method_family"] == run["method_family"]
        assert block["parameters"]["before"] == run["parameters_before"]
        assert block["parameters"]["after"] == run["parameters_after"]
        assert block["loads_with_plain_from_pretrained"] is bool(
            run["uniform"] and "int" not in str(run["method_family"])
        )
        if run["recovered"]:
            assert block["lineage"]["parent_content_hash"] == run["recovery_parent_content_hash"]
        mine = found[found["checkpoint_id"] == run["checkpoint_id"]]
        assert block["verdicts"] == model_card.verdict_records(mine.to_dict("records"))
        assert bool(block["verdicts"]) is (run["method_family"] != "baseline"), run


def test_every_checkpoint_has_a_card_and_a_uniform_one_exports(
    stack: Stack, plan: Plan, tmp_path: Path
) -> None:
    # The runs above ended by rewriting the cards with the verdicts the store recorded.
    assert_cards_match_the_store(stack, plan.experiment)
    checkpoints = str(stack.home / "checkpoints")
    with sync_channel(stack.addresses["results"]) as chan:
        runs = (
            results_pb2_grpc.ResultsServiceStub(chan)
            .ListPruneRuns(results_pb2.ListPruneRunsRequest(experiment=plan.experiment))
            .runs
        )
    uniform = next(run.result.checkpoint_id for run in runs if run.result.uniform)
    kept = next(run.result.checkpoint_id for run in runs if not run.result.uniform)
    refused = stack.cli(
        "checkpoint", "export", kept, str(tmp_path / "kept"), "--checkpoints-dir", checkpoints
    )
    assert refused.returncode == 1 and "load_checkpoint" in refused.stderr
    assert not (tmp_path / "kept").exists()
    exported = stack.cli(
        "checkpoint", "export", uniform, str(tmp_path / "plain"), "--checkpoints-dir", checkpoints
    )
    assert exported.returncode == 0, exported.stderr
    card = stack.cli("checkpoint", "card", kept)
    assert card.returncode == 0, card.stderr
    assert_cards_match_the_store(stack, plan.experiment)


def test_the_html_report_opens_offline_with_the_tables_of_report(
    stack: Stack,
    plan: Plan,
    tmp_path: Path,
    browser: Any,  # noqa: F811 - the fixture
) -> None:
    from greenprune import Client
    from greenprune.client import cli, html_report
    from tests.app.report_check import open_offline
    from tests.app.test_browser import artifacts_dir

    report = tmp_path / "demo.html"
    result = stack.cli(
        "report", "--file", str(stack.experiment), "--html", str(report), "--figures", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert f"HTML report: {report}" in " ".join(result.stdout.split())
    assert {p.name for p in tmp_path.glob("tradeoff.*")} == {"tradeoff.svg", "tradeoff.png"}
    shown = open_offline(browser, report, artifacts_dir() / "demo-report-tradeoff.png")
    assert shown.requests == [] and shown.errors == []
    assert "tradeoff" in shown.figures
    assert shown.chart_ink > 0.03 and shown.chart_colours > 16
    with Client(results=stack.addresses["results"]) as client:
        tables = cli._tables(client, plan.experiment)
    titles = [str(t.title) for t in tables]
    assert titles[:2] == [plan.experiment, f"{plan.experiment} energy profile"]
    assert f"{plan.experiment} payback" in titles
    assert [t["title"] for t in shown.tables] == titles
    for seen, table in zip(shown.tables, tables, strict=True):
        assert (seen["headers"], seen["rows"]) == html_report.table_cells(table)
    text = report.read_text("utf-8")
    assert "demo.yaml" in text and "lm_eval" in text


def test_the_methods_experiment_produces_every_method(stack: Stack, tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    # experiments/methods.yaml with smaller evaluations and profile: the mechanics of every
    # method through the services, within a minute or two of jobs.
    methods = yaml.safe_load((ROOT / "experiments" / "methods.yaml").read_text())
    methods["pruning"]["ratios"] = [0.0, 0.5]  # the baseline and one compressed size
    methods["eval"].update(tasks=["greenprune_facts"], limit=16, idle_seconds=0, warmup_batches=0)
    methods["energy"].update(batch_sizes=[4], rounds=2, window_seconds=0.1, decode_tokens=2)
    experiment = tmp_path / "methods.yaml"
    experiment.write_text(yaml.safe_dump(methods, sort_keys=False))
    result = stack.cli("run", str(experiment), "--no-progress", timeout=1500)
    if os.environ.get("GREENPRUNE_SHOW_TABLE"):
        print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = plan_experiment(load_experiment(experiment))
    prune_runs, eval_runs = stack.runs("methods")  # one row per step
    assert sorted(run.request_id for run in prune_runs) == sorted(
        step.request_id for step in plan.prune_steps
    )
    assert len(eval_runs) >= len(plan.eval_steps)
    results = [run.result for run in prune_runs]
    assert {"baseline", "width", "depth", "int8", "width+int8"} <= {
        result.method_family for result in results
    }
    depth = [result for result in results if result.method_family == "depth"]
    assert [result.layers_after for result in depth] == [2]
    quantized = [result for result in results if result.quantization_bits == 8]
    assert quantized and all(result.quantization_library for result in quantized)
    # Every checkpoint's model card: its header parses and its figures are the store's; every
    # compressed one carries its verdicts (the run rewrote the cards when it ended).
    assert_cards_match_the_store(stack, "methods")
