from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from greenprune.client import stack
from greenprune.rpc.healthcheck import main as healthcheck


def test_config_reads_ports_and_home_from_env(tmp_path: Path) -> None:
    env = {
        "GREENPRUNE_HOME": str(tmp_path / "state"),
        "GREENPRUNE_EVAL_PORT": "6002",
        "GREENPRUNE_APP_PORT": "9000",
    }
    config = stack.StackConfig.from_env(env)
    assert config.home == (tmp_path / "state").resolve()
    assert config.address("eval") == "127.0.0.1:6002"
    assert config.address("pruning") == "127.0.0.1:50051"
    assert config.app_url == "http://127.0.0.1:9000"
    assert config.pid_file("eval") == config.home / "run" / "eval.pid"
    assert config.log_file("results") == config.home / "logs" / "results.log"
    assert stack.local_addresses(env)["eval"] == "127.0.0.1:6002"


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_bad_port_is_a_clear_error(value: str) -> None:
    with pytest.raises(stack.StackError, match="GREENPRUNE_RESULTS_PORT"):
        stack.StackConfig.from_env({"GREENPRUNE_RESULTS_PORT": value})


def test_environment_points_the_services_at_each_other(tmp_path: Path) -> None:
    config = stack.StackConfig.from_env(
        {"GREENPRUNE_HOME": str(tmp_path), "GREENPRUNE_RESULTS_PORT": "7003"}
    )
    env = stack.environment(config, {"PATH": "/bin"})
    assert env["GREENPRUNE_HOME"] == str(tmp_path.resolve())
    assert env["GREENPRUNE_PRUNING_RESULTS_ADDRESS"] == "127.0.0.1:7003"
    assert env["GREENPRUNE_EVAL_RESULTS_ADDRESS"] == "127.0.0.1:7003"
    assert env["GREENPRUNE_APP_RESULTS_ADDRESS"] == "127.0.0.1:7003"
    assert env["GREENPRUNE_RESULTS_HOST"] == "127.0.0.1"
    assert env["GREENPRUNE_RESULTS_PORT"] == "7003"
    # an explicit results address is kept
    kept = stack.environment(config, {"GREENPRUNE_EVAL_RESULTS_ADDRESS": "elsewhere:1"})
    assert kept["GREENPRUNE_EVAL_RESULTS_ADDRESS"] == "elsewhere:1"


def test_commands() -> None:
    config = stack.StackConfig.from_env({"GREENPRUNE_APP_PORT": "8600"})
    assert stack.command("eval", config)[1:] == ["-m", "eval_service.server"]
    app = stack.command("app", config)
    assert app[1:4] == ["-m", "streamlit", "run"]
    assert app[4].endswith("results_app/main.py")
    assert app[app.index("--server.port") + 1] == "8600"
    assert app[app.index("--server.headless") + 1] == "true"


def test_stale_pid_file_is_not_a_live_component(tmp_path: Path) -> None:
    config = stack.StackConfig.from_env({"GREENPRUNE_HOME": str(tmp_path)})
    config.run_dir.mkdir(parents=True)
    # a process that exists but is not the service
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        config.pid_file("eval").write_text(f"{sleeper.pid}\n")
        assert stack.live_pid(config, "eval") is None
        config.pid_file("eval").write_text("not a pid\n")
        assert stack.live_pid(config, "eval") is None
    finally:
        sleeper.kill()
        sleeper.wait()
    config.pid_file("eval").write_text(f"{sleeper.pid}\n")
    assert stack.live_pid(config, "eval") is None
    assert stack.down(config) == []
    assert not config.pid_file("eval").exists()


def test_up_reports_a_service_that_dies_on_start_with_its_log(tmp_path: Path) -> None:
    # the results port is taken by a plain socket listener, so the server cannot bind it
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    config = stack.StackConfig.from_env(
        {"GREENPRUNE_HOME": str(tmp_path), "GREENPRUNE_RESULTS_PORT": str(port)}
    )
    try:
        with pytest.raises(stack.StackError) as info:
            stack.up(config, components=("results",), timeout=60)
    finally:
        blocker.close()
    message = str(info.value)
    assert "results exited with code" in message
    assert "bind" in message.lower()
    assert not config.pid_file("results").exists()


def test_healthcheck_exits_non_zero_when_nothing_serves() -> None:
    assert healthcheck(["127.0.0.1:1", "--timeout", "0.5"]) == 1
