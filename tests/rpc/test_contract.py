"""The committed stubs are what the protos generate, and the protos pass buf lint."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import google.rpc.status_pb2
import grpc_tools
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def _googleapis_include(tmp_path: Path) -> Path:
    include = tmp_path / "googleapis"
    target = include / "google" / "rpc"
    target.mkdir(parents=True)
    shutil.copy(Path(google.rpc.status_pb2.__file__).with_name("status.proto"), target)
    return include


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "greenprune").rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{PROTOS}", f"-I{_googleapis_include(tmp_path)}", f"-I{well_known}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            *protos,
        ],
        check=True,
        cwd=PROTOS,
    )  # fmt: skip
    generated = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(ROOT)
        for p in (ROOT / "greenprune" / "api").rglob("*")
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    )
    assert generated == committed, "run `make protos`: the set of generated files differs"
    drifted = [str(p) for p in generated if not filecmp.cmp(out / p, ROOT / p, shallow=False)]
    assert not drifted, f"run `make protos`: these stubs differ from the protos: {drifted}"


def test_buf_lint_passes(tmp_path: Path) -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    if buf is None:
        pytest.fail("buf (PyPI buf-bin) is not installed in the virtual environment")
    work = tmp_path / "protos"
    shutil.copytree(PROTOS, work, ignore=shutil.ignore_patterns("google"))
    shutil.copytree(_googleapis_include(tmp_path) / "google", work / "google")
    result = subprocess.run([buf, "lint"], cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_catches_an_uncommented_field(tmp_path: Path) -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    assert buf is not None
    work = tmp_path / "protos"
    shutil.copytree(PROTOS, work, ignore=shutil.ignore_patterns("google"))
    shutil.copytree(_googleapis_include(tmp_path) / "google", work / "google")
    layers = work / "greenprune/api/common/v1/layers.proto"
    layers.write_text(
        layers.read_text().replace("  bool kept = 5;", "  bool kept = 5;\n  int32 x = 6;")
    )
    result = subprocess.run([buf, "lint"], cwd=work, capture_output=True, text=True)
    assert result.returncode != 0
    assert 'Field "x"' in result.stdout and "comment" in result.stdout, result.stdout
