"""The model card of a checkpoint: ``README.md`` in its folder, Hugging Face's format.

A card is a YAML header (between ``---`` lines: ``library_name``, ``base_model`` where the
source is a Hub id, ``tags``, ``pipeline_tag`` and a ``greenprune`` block with the lineage,
parameters and verdicts) and a Markdown body that says the same in words, with how to load the
checkpoint. Every figure comes from the checkpoint's manifest (``greenprune.json``) or, for the
verdicts, from rows of the ResultsService's ``findings`` view passed in; nothing is measured
or recomputed here. The card is not a weight file: writing it never changes the checkpoint's
content hash (``checkpoint.weights_content_hash`` hashes only ``*.safetensors``).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

CARD_NAME = "README.md"
"""The card's file name in a checkpoint folder (what the Hugging Face Hub shows)."""

VERDICT_FIELDS: tuple[str, ...] = (
    "experiment",
    "kind",
    "task",
    "metric",
    "phase",
    "batch_size",
    "baseline_value",
    "value",
    "estimate",
    "low",
    "high",
    "relative",
    "verdict",
    "margin",
    "family",
    "family_size",
    "adjustment",
    "text",
    "energy_method",
)
"""The fields of a ``findings`` row a card records for each verdict, in order."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def loading(manifest: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether plain ``from_pretrained`` loads the checkpoint, and why (or why not).

    Args:
        manifest: The checkpoint's manifest.

    Returns:
        ``(plain, reason)``: ``plain`` is True for a uniform, unquantized checkpoint.
    """
    if manifest.get("quantization"):
        return False, (
            "its weights are quantized and stored as their plain parts (greenprune rebuilds the "
            "quantized tensors from the manifest's `quantized_tensors`), which transformers "
            "cannot read by itself"
        )
    if not manifest.get("uniform", True):
        kept = manifest.get("kept_layers") or []
        return False, (
            "its decoder layers differ in shape (layers "
            + ", ".join(str(k) for k in kept)
            + " were kept out of pruning), while a transformers config describes one shape for "
            "every layer; greenprune resizes each layer from the manifest before loading"
        )
    return True, "every decoder layer has the same shape and config.json says so"


def _number(value: Any) -> Any:
    """A figure as YAML writes it: None for missing and NaN, plain int/float/bool/str."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    try:
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return None if math.isnan(float(value)) else float(value)
    except ImportError:  # pragma: no cover - numpy comes with torch and pandas
        pass
    try:
        if value != value:  # pandas' NA and NaT compare unequal to themselves
            return None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, str) else str(value)


def verdict_records(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts a card records: ``findings`` rows reduced to :data:`VERDICT_FIELDS`.

    Args:
        rows: Rows of the ``findings`` view of one checkpoint (any extra columns are dropped).

    Returns:
        One dict per row, accuracy before energy, then by experiment, task, phase and batch.
    """
    records = [{name: _number(row.get(name)) for name in VERDICT_FIELDS} for row in rows]

    def order(record: dict[str, Any]) -> tuple[Any, ...]:
        return (
            record["kind"] != "accuracy",
            str(record["experiment"] or ""),
            str(record["task"] or ""),
            str(record["metric"] or ""),
            str(record["phase"] or ""),
            record["batch_size"] or 0,
        )

    return sorted(records, key=order)


def card_header(
    manifest: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The card's YAML header as a dict (see the module docstring).

    Args:
        manifest: The checkpoint's manifest.
        verdicts: Rows of the ``findings`` view of this checkpoint (empty: none recorded yet).
    """
    source = manifest.get("source") or {}
    base = str(source.get("model") or (manifest.get("spec") or {}).get("model") or "")
    family = str(manifest.get("method_family") or "")
    plain, _ = loading(manifest)
    recovery = manifest.get("recovery") or None
    lineage: dict[str, Any] = {
        "base_model": base,
        "method": manifest.get("method"),
        "method_family": family or None,
        "structure": manifest.get("structure"),
        "target_ratio": _number(manifest.get("target_ratio")),
        "achieved_ratio": _number(manifest.get("achieved_ratio")),
        "kept_layers": list(manifest.get("kept_layers") or []),
        "removed_layers": list(manifest.get("removed_layers") or []),
        "quantization": _quantization(manifest.get("quantization")),
        "sparsity": manifest.get("sparsity") or None,
        "recovery": None,
        "parent_content_hash": None,
    }
    if isinstance(recovery, Mapping):
        settings = recovery.get("settings") or {}
        lineage["recovery"] = {
            "method": recovery.get("method"),
            "loss": recovery.get("loss"),
            "steps": _number(recovery.get("steps")),
            "rank": _number(settings.get("rank")),
            "initial_loss": _number(recovery.get("initial_loss")),
            "final_loss": _number(recovery.get("final_loss")),
        }
        lineage["parent_content_hash"] = recovery.get("parent_content_hash") or None
    header: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["greenprune", "pruned", *([family] if family else [])],
    }
    if _HUB_ID.match(base):
        header["base_model"] = base
    header["greenprune"] = {
        "checkpoint_id": manifest.get("checkpoint_id"),
        "content_hash": manifest.get("content_hash"),
        "architecture": manifest.get("architecture"),
        "lineage": lineage,
        "parameters": {
            "before": _number(manifest.get("parameters_before")),
            "after": _number(manifest.get("parameters_after")),
            "prunable_before": _number(manifest.get("prunable_parameters_before")),
            "prunable_after": _number(manifest.get("prunable_parameters_after")),
            "zeroed": _number(manifest.get("zeroed_parameters")),
        },
        "layers": {
            "before": _number(manifest.get("layers_before")),
            "after": _number(manifest.get("layers_after")),
        },
        "loads_with_plain_from_pretrained": plain,
        "versions": dict(manifest.get("versions") or {}),
        "verdicts": verdict_records(verdicts),
    }
    return header


def _quantization(record: Any) -> str | None:
    """The quantization in words ("int8 weight-only, torchao"), None when not quantized."""
    if not record:
        return None
    if isinstance(record, Mapping):
        return ", ".join(str(record[k]) for k in ("name", "scheme", "library") if record.get(k))
    return str(record)


def _count(value: Any) -> str:
    return "unknown" if value is None else f"{int(value):,}"


def _share(value: Any) -> str:
    return "unknown" if value is None else f"{float(value):.1%}"


def render_card(manifest: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]] = ()) -> str:
    """The card's text: the YAML header, then the body in Markdown.

    Args:
        manifest: The checkpoint's manifest.
        verdicts: Rows of the ``findings`` view of this checkpoint (empty: none recorded yet).
    """
    header = card_header(manifest, verdicts)
    block = header["greenprune"]
    lineage, parameters = block["lineage"], block["parameters"]
    plain, why = loading(manifest)
    checkpoint_id = block["checkpoint_id"] or "this checkpoint"
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {checkpoint_id}",
        "",
        f"A compressed copy of `{lineage['base_model']}` made by greenprune: method "
        f"`{lineage['method']}` ({lineage['method_family'] or 'width'}), target ratio "
        f"{_share(lineage['target_ratio'])} of the prunable parameters "
        f"({_share(lineage['achieved_ratio'])} achieved).",
        "",
        "## Lineage",
        "",
        f"- Base model: `{lineage['base_model']}`",
        f"- Content hash of the weights: `{block['content_hash']}`",
    ]
    if lineage["kept_layers"]:
        lines.append(f"- Layers kept out of pruning: {lineage['kept_layers']}")
    if lineage["removed_layers"]:
        lines.append(f"- Layers removed (depth pruning): {lineage['removed_layers']}")
    if lineage["quantization"]:
        lines.append(f"- Quantization: {lineage['quantization']}")
    if lineage["sparsity"]:
        lines.append(f"- Weight sparsity: {lineage['sparsity']}")
    if lineage["recovery"]:
        recovery = lineage["recovery"]
        lines.append(
            f"- Recovery: {recovery['method']} ({recovery['loss'] or 'next-token'} loss), "
            f"{recovery['steps']} steps, from the pruned parent "
            f"`{lineage['parent_content_hash']}`"
        )
    else:
        lines.append("- Recovery: none")
    lines += [
        "",
        "## Parameters",
        "",
        f"{_count(parameters['before'])} before, {_count(parameters['after'])} after "
        f"({block['layers']['before']} decoder layers before, {block['layers']['after']} after).",
        "",
        "## Verdicts recorded",
        "",
    ]
    if block["verdicts"]:
        lines += [
            "Each change is against the unpruned baseline of the same experiment, with its 95% "
            "interval and verdict (lower, higher, equivalent within the margin, inconclusive), "
            "adjusted within its family.",
            "",
            "| experiment | kind | task / phase | batch | baseline | this | change | family |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for record in block["verdicts"]:
            where = record["task"] or record["metric"] or ""
            if record["kind"] == "energy":
                where = str(record["phase"] or "")
            lines.append(
                f"| {record['experiment']} | {record['kind']} | {where} | "
                f"{record['batch_size'] if record['batch_size'] is not None else ''} | "
                f"{_cell(record['baseline_value'])} | {_cell(record['value'])} | "
                f"{record['text'] or ''} | "
                f"{record['family'] or ''} ({record['family_size'] or ''}) |"
            )
    else:
        lines.append(
            "None yet: `greenprune run` writes them here when its experiment ends, and "
            f"`greenprune checkpoint card {checkpoint_id}` rewrites this card from the results "
            "store."
        )
    lines += ["", "## How to load it", ""]
    if plain:
        lines += [
            f"Plain transformers loads it ({why}):",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            "```",
        ]
    else:
        lines += [
            f"Load it with greenprune's loader: plain `from_pretrained` cannot, because {why}.",
            "",
            "```python",
            "from greenprune.core.checkpoint import load_checkpoint",
            "",
            'model, tokenizer, manifest = load_checkpoint("path/to/this/folder")',
            "```",
        ]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_card(text: str) -> dict[str, Any]:
    """The YAML header of a card's text.

    Raises:
        ValueError: The text does not start with a ``---`` delimited YAML mapping.
    """
    if not text.startswith("---\n"):
        raise ValueError("a model card starts with a '---' line")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("the model card's YAML header has no closing '---' line")
    header = yaml.safe_load(text[4:end])
    if not isinstance(header, dict):
        raise ValueError("the model card's YAML header is not a mapping")
    return header


def write_card(
    folder: Path, manifest: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]] = ()
) -> Path:
    """Writes (or replaces) the card in ``folder`` atomically and returns its path.

    Args:
        folder: The checkpoint folder.
        manifest: Its manifest.
        verdicts: Rows of the ``findings`` view of this checkpoint.
    """
    folder = Path(folder)
    target = folder / CARD_NAME
    handle, temporary = tempfile.mkstemp(prefix=f".{CARD_NAME}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(render_card(manifest, verdicts))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
