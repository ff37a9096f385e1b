"""Writes the JSONL data of the local lm-eval tasks from the synthetic world.

The committed files under ``eval_service/tasks/`` are this module's output; a unit test checks
that a fresh generation is byte-identical. Regenerate with
``python -m eval_service.tasks.generate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from greenprune.core.reference.world import (
    arithmetic_facts,
    heldout_documents,
    multiple_choice_docs,
    world_facts,
)

FACTS_SEED = 1
ARITH_SEED = 2
HELDOUT_DOCS = 50


def task_documents() -> dict[str, list[dict[str, object]]]:
    """The documents of every local task, keyed by the JSONL file name they go to."""
    return {
        "greenprune_facts.jsonl": multiple_choice_docs(world_facts(), FACTS_SEED),
        "greenprune_arith.jsonl": multiple_choice_docs(arithmetic_facts(), ARITH_SEED),
        "greenprune_heldout.jsonl": [
            {"id": f"heldout-{index}", "text": text}
            for index, text in enumerate(heldout_documents(HELDOUT_DOCS))
        ],
    }


def _jsonl(docs: Iterable[dict[str, object]]) -> str:
    return "".join(json.dumps(doc, ensure_ascii=True) + "\n" for doc in docs)


def write_task_data(out_dir: Path) -> None:
    """Writes ``greenprune_{facts,arith,heldout}.jsonl`` into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for file_name, docs in task_documents().items():
        (out_dir / file_name).write_text(_jsonl(docs), encoding="utf-8")


if __name__ == "__main__":
    write_task_data(Path(__file__).resolve().parent)
