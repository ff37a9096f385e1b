"""Category 9, a failure inside lm-eval names the task, the subject, the type and file:line."""

from __future__ import annotations

import re

import grpc

from bench.adversarial.harness import REFERENCE, Campaign, eval_spec
from bench.adversarial.task_folders import LIBRARY_TASK
from bench.adversarial.verdicts import ACCEPT, ACCEPTED, BAD, CLEAN


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
