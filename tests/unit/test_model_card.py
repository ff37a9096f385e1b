"""The model card every checkpoint carries, and the export plain transformers loads.

Tiny random Llamas (tests/unit/tiny_models.py) are pruned in process: one uniformly (every
layer pruned alike), one with its last layer kept out of pruning (layers of two shapes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from greenprune.client import cli
from greenprune.core import checkpoint, model_card
from greenprune.core.models import load_source_model
from pruning_service.pruner import PruneConfig, prune_model
from tests.unit.tiny_models import save_tiny_model, tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints folder with ``uniform`` and ``kept`` (its last layer not pruned)."""
    root = tmp_path_factory.mktemp("models")
    save_tiny_model(root / "llama", tiny_config("llama"), tiny_tokenizer())
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    for name, kept in (("uniform", 0), ("kept", 1)):
        model, tokenizer = load_source_model("llama", root)
        config = PruneConfig(model="llama", method="magnitude-l1", ratio=0.4, keep_last_layers=kept)
        manifest = prune_model(config, model, tokenizer, models_root=root)
        manifest["source"] = {"model": "llama", "resolved": None}
        checkpoint.save_checkpoint(model, tokenizer, manifest, checkpoints, name)
    return checkpoints


def test_every_saved_checkpoint_has_a_card_whose_header_is_its_manifest(saved: Path) -> None:
    for name, plain in (("uniform", True), ("kept", False)):
        folder = saved / name
        manifest = checkpoint.read_manifest(folder)
        text = (folder / model_card.CARD_NAME).read_text(encoding="utf-8")
        header = model_card.parse_card(text)
        assert header["library_name"] == "transformers"
        assert "greenprune" in header["tags"]
        block = header["greenprune"]
        assert block["checkpoint_id"] == name
        assert block["content_hash"] == manifest["content_hash"]
        assert block["lineage"]["base_model"] == "llama"
        assert block["lineage"]["target_ratio"] == 0.4
        assert block["parameters"]["before"] == manifest["parameters_before"]
        assert block["parameters"]["after"] == manifest["parameters_after"]
        assert block["parameters"]["after"] < block["parameters"]["before"]
        assert block["loads_with_plain_from_pretrained"] is plain
        assert block["verdicts"] == []
        loader = "AutoModelForCausalLM.from_pretrained" if plain else "load_checkpoint("
        assert loader in text
        # Not a weight file: not in the hash, not in the bytes the checkpoint takes.
        assert manifest["bytes_on_disk"] == sum(
            p.stat().st_size
            for p in folder.iterdir()
            if p.name not in (checkpoint.MANIFEST_NAME, model_card.CARD_NAME)
        )


def test_rewriting_the_card_with_verdicts_leaves_the_content_hash(saved: Path) -> None:
    folder = saved / "kept"
    manifest = checkpoint.read_manifest(folder)
    verdict = {
        "experiment": "x",
        "kind": "accuracy",
        "task": "facts",
        "metric": "acc",
        "baseline_value": 0.8,
        "value": 0.7,
        "estimate": -0.1,
        "low": -0.15,
        "high": -0.05,
        "verdict": "lower",
        "margin": 0.01,
        "family": "primary",
        "family_size": 4,
        "adjustment": "holm",
        "text": "lower: \u221210.0 pt [\u221215.0, \u22125.0]",
        "phase": float("nan"),  # a findings row's missing cells
    }
    model_card.write_card(folder, manifest, [verdict])
    header = model_card.parse_card((folder / model_card.CARD_NAME).read_text(encoding="utf-8"))
    (recorded,) = header["greenprune"]["verdicts"]
    assert recorded["text"] == verdict["text"] and recorded["phase"] is None
    assert recorded["family_size"] == 4 and recorded["low"] == -0.15
    assert checkpoint.weights_content_hash(folder)[0] == manifest["content_hash"]
    assert checkpoint.checkpoint_dir(saved, "kept") == folder
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_an_exported_uniform_checkpoint_loads_with_plain_from_pretrained(
    saved: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    args = ["checkpoint", "export", "uniform", str(out), "--checkpoints-dir", str(saved)]
    assert cli.main(args) == cli.EXIT_OK
    assert (out / model_card.CARD_NAME).is_file()
    program = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "model = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "print(sum(p.numel() for p in model.parameters()))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", program, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repository: nothing of greenprune on the path
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert loaded.returncode == 0, loaded.stderr
    manifest = checkpoint.read_manifest(saved / "uniform")
    assert int(loaded.stdout.strip().splitlines()[-1]) == manifest["parameters_after"]
    again = cli.main(args)  # the folder holds files now: refused, nothing overwritten
    assert again == cli.EXIT_FAILED


def test_a_checkpoint_with_kept_layers_is_refused_before_writing(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    code = cli.main(["checkpoint", "export", "kept", str(out), "--checkpoints-dir", str(saved)])
    assert code == cli.EXIT_FAILED
    said = capsys.readouterr().err
    assert "cannot be exported for plain transformers" in " ".join(said.split())
    assert "load_checkpoint" in said and "keep_last_layers: 0" in " ".join(said.split())
    assert not out.exists()
    assert [p for p in tmp_path.iterdir()] == []
