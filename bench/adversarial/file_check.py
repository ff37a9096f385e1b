"""Category 8 (and file-borne 1), the experiment file check of ``greenprune run --dry-run``.

Alias bombs, deep nesting, binary files, unknown keys, unknown models and tasks, every file
bound + 1; each file runs in a worker process (``--file-worker``) so that a hang is seen.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench.adversarial.harness import MB, REFERENCE, REPO, Campaign
from bench.adversarial.verdicts import ACCEPT, ACCEPTED, BAD, CLEAN, REFUSE

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
        [sys.executable, "-m", "bench.adversarial", "--file-worker", str(jobs), str(start)],
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
