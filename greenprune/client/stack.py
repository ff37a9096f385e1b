"""The local stack: the three services and the app as background processes on loopback.

Settings come from the environment, the same variables the services read:
``GREENPRUNE_HOME`` (the shared state root, default ``./.state``),
``GREENPRUNE_{RESULTS,PRUNING,EVAL}_PORT``, ``GREENPRUNE_APP_PORT`` (the app, default 8501),
``GREENPRUNE_TOKEN`` and ``GREENPRUNE_{PRUNING,EVAL,APP}_RESULTS_ADDRESS`` (set to the local
ResultsService unless given). Logs go to
``$GREENPRUNE_HOME/logs/<name>.log`` and pids to ``$GREENPRUNE_HOME/run/<name>.pid``; the
processes run in their own sessions, so they outlive the CLI that started them.

``up(ray="auto")`` (``greenprune up --ray auto``) runs the pruning and eval jobs on Ray: it
starts a local Ray head (``ray start --head``) unless the one it started still runs, and sets
``GREENPRUNE_{PRUNING,EVAL}_BACKEND=ray`` and ``..._RAY_ADDRESS`` for the services; any other
address (``ray://head:10001``) is passed to the services as is. ``down`` stops a Ray head that
``up`` started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

import greenprune
from greenprune.core.settings import default_home
from greenprune.rpc.client import health_status

SERVICES = ("results", "pruning", "eval")
APP = "app"
COMPONENTS = (*SERVICES, APP)
DEFAULT_PORTS = {"pruning": 50051, "eval": 50052, "results": 50053, APP: 8501}
HOST = "127.0.0.1"
MODULES = {
    "results": "results_service.server",
    "pruning": "pruning_service.server",
    "eval": "eval_service.server",
}
LOG_TAIL_LINES = 40

Log = Callable[[str], None]


class StackError(RuntimeError):
    """A component of the local stack could not be started or stopped."""


def project_root() -> Path:
    """The folder that holds the ``greenprune`` package (and the services' packages)."""
    return Path(greenprune.__file__).resolve().parent.parent


def app_script() -> Path:
    """The Streamlit app's entry script."""
    return project_root() / "results_app" / "main.py"


def _port(env: Mapping[str, str], name: str) -> int:
    variable = f"GREENPRUNE_{name.upper()}_PORT"
    value = env.get(variable)
    if not value:
        return DEFAULT_PORTS[name]
    try:
        port = int(value)
    except ValueError:
        raise StackError(f"{variable}={value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StackError(f"{variable}={value!r} is not a port number")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its state and listens.

    Attributes:
        home: The shared state root.
        ports: The port of each component.
        token: The bearer token the services require, if any.
    """

    home: Path
    ports: Mapping[str, int]
    token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        """Reads the configuration from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        home = Path(env["GREENPRUNE_HOME"]).resolve() if env.get("GREENPRUNE_HOME") else None
        return cls(
            home=home or default_home(),
            ports={name: _port(env, name) for name in COMPONENTS},
            token=env.get("GREENPRUNE_TOKEN") or None,
        )

    def address(self, name: str) -> str:
        """The ``host:port`` of a component."""
        return f"{HOST}:{self.ports[name]}"

    @property
    def app_url(self) -> str:
        """The URL of the Streamlit app."""
        return f"http://{HOST}:{self.ports[APP]}"

    @property
    def log_dir(self) -> Path:
        """Where the components' logs go."""
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """Where the pid files go."""
        return self.home / "run"

    def log_file(self, name: str) -> Path:
        """The log of a component."""
        return self.log_dir / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        """The pid file of a component."""
        return self.run_dir / f"{name}.pid"


def local_addresses(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The service addresses of the local stack, as ``greenprune up`` binds them."""
    config = StackConfig.from_env(env)
    return {name: config.address(name) for name in SERVICES}


def command(name: str, config: StackConfig) -> list[str]:
    """The command line that runs a component."""
    if name in MODULES:
        return [sys.executable, "-m", MODULES[name]]
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_script()),
        "--server.headless",
        "true",
        "--server.address",
        HOST,
        "--server.port",
        str(config.ports[APP]),
        "--browser.gatherUsageStats",
        "false",
    ]


def environment(config: StackConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every component starts with."""
    env = dict(os.environ if base is None else base)
    root = str(project_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["GREENPRUNE_HOME"] = str(config.home)
    for name in SERVICES:
        prefix = f"GREENPRUNE_{name.upper()}"
        env[f"{prefix}_HOST"] = HOST
        env[f"{prefix}_PORT"] = str(config.ports[name])
    for name in ("pruning", "eval"):
        env.setdefault(f"GREENPRUNE_{name.upper()}_RESULTS_ADDRESS", config.address("results"))
    env.setdefault("GREENPRUNE_APP_RESULTS_ADDRESS", config.address("results"))
    env["GREENPRUNE_APP_PORT"] = str(config.ports[APP])
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


# -- process bookkeeping -------------------------------------------------------------------------


def _marker(name: str) -> str:
    return MODULES.get(name, "streamlit")


def recorded_pid(config: StackConfig, name: str) -> int | None:
    """The pid in a component's pid file, whether or not it still runs."""
    try:
        return int(config.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def live_pid(config: StackConfig, name: str) -> int | None:
    """The pid of a running component that ``greenprune up`` started, else None."""
    pid = recorded_pid(config, name)
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if not any(_marker(name) in part for part in process.cmdline()):
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid


def leftovers(group: int, name: str) -> list[psutil.Process]:
    """Processes a component left in its process group (job workers of a killed service).

    Only processes of this interpreter's kind are considered: multiprocessing children and the
    component itself, so a recycled group id never selects an unrelated program.
    """
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.pid == os.getpid() or os.getpgid(process.pid) != group:
                continue
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "multiprocessing" in cmdline or _marker(name) in cmdline:
            found.append(process)
    return found


def _kill(processes: list[psutil.Process], timeout: float = 5.0) -> int:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return len(processes)


def log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, from byte ``offset`` on."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def component_health(config: StackConfig, name: str) -> str:
    """``SERVING`` when a component answers healthy, else its status or ``UNREACHABLE``."""
    if name in SERVICES:
        return await health_status(config.address(name), timeout=1.0)
    return await asyncio.to_thread(_app_health, config.app_url)


def _app_health(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1.0) as response:  # noqa: S310
            body = response.read().decode().strip()
    except (urllib.error.URLError, OSError, ValueError):
        return "UNREACHABLE"
    return "SERVING" if body == "ok" else f"UNHEALTHY ({body[:40]})"


@dataclass(frozen=True)
class ComponentStatus:
    """Where one component stands.

    Attributes:
        name: ``results``, ``pruning``, ``eval`` or ``app``.
        address: Its address (the URL for the app).
        pid: Its pid when ``greenprune up`` started it and it runs, else None.
        health: ``SERVING``, ``NOT_SERVING``, ``UNREACHABLE``...
        note: What ``up`` did, for its report.
    """

    name: str
    address: str
    pid: int | None
    health: str
    note: str = ""


def _display_address(config: StackConfig, name: str) -> str:
    return config.app_url if name == APP else config.address(name)


async def _status(config: StackConfig, names: tuple[str, ...]) -> list[ComponentStatus]:
    healths = await asyncio.gather(*(component_health(config, n) for n in names))
    return [
        ComponentStatus(n, _display_address(config, n), live_pid(config, n), h)
        for n, h in zip(names, healths, strict=True)
    ]


def status(config: StackConfig, names: tuple[str, ...] = COMPONENTS) -> list[ComponentStatus]:
    """The pid and health of every component."""
    return asyncio.run(_status(config, names))


# -- up --------------------------------------------------------------------------------------------


@dataclass
class _Started:
    name: str
    process: subprocess.Popen[bytes] | None
    log_offset: int


def _spawn(config: StackConfig, name: str, env: Mapping[str, str]) -> _Started:
    log_path = config.log_file(name)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"----- greenprune up: starting {name} at {stamp} -----\n".encode())
        log.flush()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command(name, config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=config.home,
            start_new_session=True,
        )
    config.pid_file(name).write_text(f"{process.pid}\n")
    return _Started(name, process, offset)


def _ray_cli() -> str:
    local = Path(sys.executable).with_name("ray")
    return str(local) if local.exists() else "ray"


# Ray 2.60's head turns token authentication on and keeps the token in ~/.ray/auth_token; its
# clients on this machine read it from there once they are told the cluster uses tokens.
TOKEN_AUTH = {"RAY_AUTH_MODE": "token"}


def ray_environment(config: StackConfig, address: str, log: Log | None = None) -> dict[str, str]:
    """The services' settings for Ray at ``address``; ``auto`` starts a local head if needed.

    The head (``ray start --head --block`` on ``GREENPRUNE_RAY_PORT``, default 6379) runs in
    its own session with its pid in ``run/ray.pid`` and its log in ``logs/ray.log``; ``down``
    stops exactly that process (never ``ray stop``, which stops every Ray on the machine).

    Raises:
        StackError: The Ray CLI is missing or the head did not start.
    """
    if address == "auto":
        port = int(os.environ.get("GREENPRUNE_RAY_PORT", "6379"))
        address = f"{HOST}:{port}"
        pid_file = config.run_dir / "ray.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        if pid is None or not psutil.pid_exists(pid):
            if log is not None:
                log(f"starting a local Ray head on {address}")
            config.log_dir.mkdir(parents=True, exist_ok=True)
            config.run_dir.mkdir(parents=True, exist_ok=True)
            command = [_ray_cli(), "start", "--head", "--block", f"--port={port}"]
            command.append("--include-dashboard=false")
            try:
                process = subprocess.Popen(
                    command,
                    stdout=config.log_file("ray").open("ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**environment(config), "RAY_USAGE_STATS_ENABLED": "0"},
                )
            except FileNotFoundError as exc:
                raise StackError("the ray CLI is missing: pip install 'greenprune[ray]'") from exc
            pid_file.write_text(f"{process.pid}\n")
            deadline = time.monotonic() + 120
            while True:
                ready = subprocess.run(
                    [_ray_cli(), "health-check", "--address", address],
                    capture_output=True,
                    timeout=60,
                    env={**os.environ, **TOKEN_AUTH},
                )
                if ready.returncode == 0:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pid_file.unlink(missing_ok=True)
                    tail = log_tail(config.log_file("ray"))
                    raise StackError(f"the Ray head did not start:\n{tail}")
                time.sleep(1.0)
    return {
        **TOKEN_AUTH,
        **{
            f"GREENPRUNE_{name}_{key}": value
            for name in ("PRUNING", "EVAL")
            for key, value in (("BACKEND", "ray"), ("RAY_ADDRESS", address))
        },
    }


def stop_ray(config: StackConfig, timeout: float = 30.0) -> bool:
    """Stops the Ray head ``up`` started, if it runs; returns whether it did."""
    pid_file = config.run_dir / "ray.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink(missing_ok=True)
    try:
        head = psutil.Process(pid)
        group = [head, *head.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    head.terminate()  # `ray start --block` stops the processes it started, then exits
    _, alive = psutil.wait_procs([head], timeout=timeout)
    for process in [*alive, *group[1:]]:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running():
                process.kill()
    return True


def up(
    config: StackConfig,
    *,
    with_app: bool = True,
    components: Sequence[str] | None = None,
    timeout: float = 180.0,
    log: Log | None = None,
    ray: str | None = None,
) -> list[ComponentStatus]:
    """Starts what is not running yet and waits until everything is healthy.

    Args:
        config: The stack's configuration.
        with_app: Whether to start the Streamlit app too.
        components: Start only these (default: the services, and the app if ``with_app``).
        timeout: Seconds to wait for every component to be healthy.
        log: Receives one line per component started.
        ray: Run the jobs on Ray at this address (``auto``: a local head, started if needed);
            services already running keep their backend.

    Returns:
        The status of every component.

    Raises:
        StackError: A component died on start or was not healthy in time; the message holds
            the tail of its log.
    """
    names = tuple(components) if components else (COMPONENTS if with_app else SERVICES)
    if APP in names and not app_script().is_file():
        raise StackError(f"the app's script {app_script()} is missing")
    for folder in (config.home, config.log_dir, config.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    env = environment(config)
    if ray:
        env.update(ray_environment(config, ray, log))
    started: dict[str, _Started] = {}
    notes: dict[str, str] = {}
    current = {s.name: s for s in status(config, names)}
    for name in names:
        pid, health = current[name].pid, current[name].health
        if pid is not None:
            notes[name] = "already running"
            started[name] = _Started(name, None, 0)
        elif health == "SERVING":
            notes[name] = "already served by a process greenprune up did not start"
        else:
            stale = recorded_pid(config, name)
            reaped = _kill(leftovers(stale, name)) if stale is not None else 0
            if reaped and log is not None:
                log(f"stopped {reaped} process(es) the previous {name} (pid {stale}) left behind")
            started[name] = _spawn(config, name, env)
            notes[name] = "started"
            if log is not None:
                log(f"starting {name} on {_display_address(config, name)}")
    asyncio.run(_wait_healthy(config, started, timeout))
    return [
        ComponentStatus(s.name, s.address, s.pid, s.health, notes.get(s.name, ""))
        for s in status(config, names)
    ]


async def _wait_healthy(config: StackConfig, started: dict[str, _Started], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waiting = dict(started)
    while waiting:
        for name, start in list(waiting.items()):
            if await component_health(config, name) == "SERVING":
                del waiting[name]
                continue
            exited = start.process.poll() if start.process is not None else None
            if exited is None and start.process is None and live_pid(config, name) is None:
                exited = -1
            if exited is not None:
                config.pid_file(name).unlink(missing_ok=True)
                tail = log_tail(config.log_file(name), start.log_offset)
                raise StackError(
                    f"{name} exited with code {exited} while starting; "
                    f"the end of {config.log_file(name)}:\n{tail}"
                )
        if not waiting:
            return
        if loop.time() > deadline:
            details = "\n".join(
                f"--- {name} ({config.log_file(name)}):\n"
                f"{log_tail(config.log_file(name), waiting[name].log_offset)}"
                for name in waiting
            )
            raise StackError(
                f"not healthy after {timeout:.0f} s: {', '.join(waiting)}. "
                f"Stop the rest with `greenprune down`.\n{details}"
            )
        await asyncio.sleep(0.25)


# -- down ------------------------------------------------------------------------------------------


def down(config: StackConfig, *, timeout: float = 30.0, log: Log | None = None) -> list[str]:
    """Stops the components: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

    Returns:
        The names of the components that were running.
    """
    stopped = []
    for name in reversed(COMPONENTS):
        pid = live_pid(config, name)
        if pid is None:
            stale = recorded_pid(config, name)
            if stale is not None:
                _kill(leftovers(stale, name))
            config.pid_file(name).unlink(missing_ok=True)
            continue
        process = psutil.Process(pid)
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
        _, alive = psutil.wait_procs([process], timeout=timeout)
        forced = bool(alive)
        for leftover in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5)
        # Job processes the service left behind share its process group (its own session).
        _kill(leftovers(pid, name))
        config.pid_file(name).unlink(missing_ok=True)
        stopped.append(name)
        if log is not None:
            log(f"stopped {name} (pid {pid}{', killed after the timeout' if forced else ''})")
    if stop_ray(config, timeout):
        stopped.append("ray")
        if log is not None:
            log("stopped the local Ray head")
    return stopped
