"""Service processes for the benchmarks: real servers on free loopback ports."""

from __future__ import annotations

import contextlib
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
