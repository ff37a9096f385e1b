"""Workers the job-runner tests run in spawned children."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprune.core.errors import InvalidArgumentError


def echo(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Reports two stages and returns the spec with the child's pid."""
    progress("first", 0.25)
    progress("second", 0.75)
    return {"echo": spec, "pid": os.getpid(), "workdir": context["workdir"]}


def slow(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Writes its pid to the workdir, then sleeps ``spec['seconds']`` in small steps."""
    Path(context["workdir"], "pid").write_text(str(os.getpid()))
    steps = int(spec.get("seconds", 30) * 10)
    for step in range(steps):
        progress("sleeping", step / steps)
        time.sleep(0.1)
    return {"slept": spec.get("seconds", 30)}


def invalid(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Fails the way a domain module does on bad input."""
    raise InvalidArgumentError("spec.ratio", "must be < 0.9")


def crash(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Dies without a word, as an out-of-memory kill would."""
    os._exit(137)


WARMED: dict[str, Any] = {}


def record_warm(lane: str) -> None:
    """Warm-up hook: notes the lane, process and time it ran at."""
    WARMED.update(lane=lane, pid=os.getpid(), at=time.time())


def broken_warm(lane: str) -> None:
    """Warm-up hook that fails, as a missing library would."""
    raise ImportError("no module named 'missing_library'")


def report_warm(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Returns what the warm-up hook recorded in this process, with this process's pid."""
    return {"warmed": dict(WARMED), "pid": os.getpid()}


def echo_or_refuse(
    spec: dict[str, Any], context: dict[str, Any], progress: Callable[[str, float], None]
) -> dict[str, Any]:
    """Returns its pid and the jobs this process ran before; ``{"refuse": True}`` fails."""
    if spec.get("refuse"):
        raise InvalidArgumentError("spec.refuse", "refused on purpose")
    RAN.append(context["job_id"])
    return {"pid": os.getpid(), "ran": list(RAN)}


RAN: list[str] = []
"""The jobs :func:`echo_or_refuse` ran in this process, in order."""
