"""Service processes for the benchmarks: real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Returns a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_services(home: Path, modules: Sequence[str], env: dict[str, str]) -> Iterator[None]:
    """Runs ``python -m MODULE`` for each module, logging to ``home/logs``, until exit."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            cwd=REPO,
            stdout=(logs / f"{module}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for module in modules
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


@contextlib.contextmanager
def worker_with_results(home: Path, kind: str) -> Iterator[str]:
    """Runs a ResultsService and the ``pruning`` or ``eval`` service reporting to it.

    Both keep their state under ``home`` and take local models from ``home/models``.

    Yields:
        The worker service's address, once both services are SERVING.
    """
    from greenprune.rpc.client import wait_until_serving

    module = {"pruning": "pruning_service.server", "eval": "eval_service.server"}[kind]
    prefix = f"GREENPRUNE_{kind.upper()}_"
    results = f"127.0.0.1:{free_port()}"
    worker_port = free_port()
    env = {
        **os.environ,
        "GREENPRUNE_HOME": str(home),
        "GREENPRUNE_RESULTS_PORT": results.rsplit(":", 1)[1],
        f"{prefix}PORT": str(worker_port),
        f"{prefix}RESULTS_ADDRESS": results,
        f"{prefix}MODELS_ROOT": str(home / "models"),
    }
    address = f"127.0.0.1:{worker_port}"

    async def serving() -> None:
        await wait_until_serving(results, timeout=120)
        await wait_until_serving(address, timeout=120)

    with running_services(home, ("results_service.server", module), env):
        asyncio.run(serving())
        yield address


def run_python(args: Sequence[str], **kwargs: object) -> str:
    """Runs ``python ARGS`` from the repository and returns its stdout.

    Raises:
        RuntimeError: It exited non-zero; the message holds the end of its stderr.
    """
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, **kwargs
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"python {' '.join(args)[:200]} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done.stdout


def run_code(code: str, argv: Sequence[str] = (), *, fresh: bool = True) -> str:
    """Runs ``python -c CODE ARGV`` and returns its stdout: in a fresh process, or in this one.

    A quick mode passes ``fresh=False`` to run the same code (``sys.argv`` set as the fresh
    process would see it) without the cost of a fresh interpreter importing torch again; its
    timings then mean little, as quick ones do.
    """
    if fresh:
        return run_python(["-c", code, *argv])
    out, saved = io.StringIO(), sys.argv
    sys.argv = ["-c", *argv]
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<bench code>", "exec"), {"__name__": "__main__"})
    finally:
        sys.argv = saved
    return out.getvalue()
