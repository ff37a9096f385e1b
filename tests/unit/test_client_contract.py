"""The contract guard of `make lint`: `buf breaking` against main catches a field renumbering."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".venv" / "bin" / "buf"
CHECK = ROOT / "protos" / "check-breaking.sh"
PROTO = Path("protos/greenprune/api/pruning/v1/pruning.proto")

pytestmark = pytest.mark.skipif(
    not BUF.exists() or not (ROOT / "protos" / "google").is_dir(),
    reason="needs .venv/bin/buf and protos/google (make lint copies it)",
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "protos" / "check-breaking.sh"), str(BUF)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _renumber(repo: Path) -> None:
    path = repo / PROTO
    text = path.read_text()
    assert "  double ratio = 3;" in text
    path.write_text(text.replace("  double ratio = 3;", "  double ratio = 30;"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the protos in a fresh git repository whose main has one commit."""
    repo = tmp_path / "repo"
    files = _git(ROOT, "ls-files", "protos").split()
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    shutil.copy2(CHECK, repo / "protos" / "check-breaking.sh")
    shutil.copytree(ROOT / "protos" / "google", repo / "protos" / "google")
    (repo / ".gitignore").write_text("/protos/google/\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_a_renumbering_on_a_branch_fails(repo: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "feature")
    assert _check(repo).returncode == 0
    _renumber(repo)
    result = _check(repo)
    assert result.returncode != 0
    assert "ratio" in result.stdout + result.stderr


def test_a_renumbering_landed_on_main_fails_against_the_previous_commit(repo: Path) -> None:
    (repo / "README").write_text("x\n")
    _git(repo, "add", "README")
    _git(repo, "commit", "-q", "-m", "harmless")
    assert _check(repo).returncode == 0
    _renumber(repo)
    _git(repo, "commit", "-q", "-am", "renumber")
    result = _check(repo)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ratio" in result.stdout + result.stderr
