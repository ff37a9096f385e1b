"""Category 1, client-chosen code: task folders outside the roots and hostile task YAML.

Folders outside the roots (``/etc``, ``..``, symlinks), task YAML with ``!function``,
``!!python/...``, ``class:``, includes leaving the root, sent as paths and as uploaded task
sources; no marker file may ever be written.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from bench.adversarial.harness import Campaign, eval_spec
from bench.adversarial.task_folders import (
    DATA_JSONL,
    EVIL_PY,
    HOSTILE_TASK_YAML,
    TASK_FOLDER_PATHS,
    TASK_SOURCE_UPLOADS,
    task_name,
    task_yaml,
)
from bench.adversarial.verdicts import ACCEPTED, BAD


def category_code(c: Campaign) -> None:
    """Hostile task folders and uploads; no marker file may be written."""
    counter = iter(range(10**6))
    for name, _ in HOSTILE_TASK_YAML:
        spec = eval_spec(tasks=[task_name(name)], task_paths=[str(c.task_root / name)])
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
    contents = {name: task_yaml(task_name(name), extra) for name, extra in HOSTILE_TASK_YAML}
    contents["plain"] = task_yaml("adv_uploaded", "")
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
