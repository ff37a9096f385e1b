"""Model cards written with the verdicts the ResultsService recorded for each checkpoint.

The pruning service writes each checkpoint's card when it saves it (no verdicts exist yet);
``greenprune run`` rewrites the cards of its experiment when it ends, and ``greenprune
checkpoint card ID`` rewrites one, wherever this machine can reach the checkpoint's folder (the
local stack's home, or ``Client(checkpoints_dir=...)``). The verdicts are the ``findings`` view's
rows of the checkpoint in every experiment that made or measured it; the rendering is
:mod:`greenprune.core.model_card`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from greenprune.core import checkpoint, model_card
from greenprune.core.errors import NotFoundError


def _experiments_of(prune_runs: Any, checkpoint_ids: Iterable[str]) -> dict[str, list[str]]:
    """The experiments whose prune runs wrote each checkpoint."""
    wanted = set(checkpoint_ids)
    found: dict[str, list[str]] = {c: [] for c in wanted}
    for cid, experiment in zip(prune_runs["checkpoint_id"], prune_runs["experiment"], strict=True):
        if cid in wanted and experiment not in found[cid]:
            found[cid].append(experiment or "")
    return found


def _write(client: Any, checkpoint_id: str, rows: list[dict[str, Any]]) -> Path | None:
    try:
        folder = checkpoint.checkpoint_dir(client.checkpoints_dir, checkpoint_id)
    except NotFoundError:
        return None
    manifest = checkpoint.read_manifest(folder)
    return model_card.write_card(folder, manifest, rows)


def refresh_cards(
    client: Any, experiment: str = "", checkpoint_ids: Iterable[str] | None = None
) -> list[Path]:
    """Rewrites the cards of checkpoints this machine can reach, with their recorded verdicts.

    Args:
        client: A :class:`greenprune.client.sdk.Client`.
        experiment: The experiment whose checkpoints to refresh (when ``checkpoint_ids`` is
            None).
        checkpoint_ids: Exactly these checkpoints.

    Returns:
        The cards written; a checkpoint whose folder is not on this machine is skipped.

    Raises:
        NotFoundError: A checkpoint named in ``checkpoint_ids`` has no prune run recorded.
    """
    prune_runs = client.results("prune_runs")
    if checkpoint_ids is None:
        mine = prune_runs[prune_runs["experiment"] == experiment]
        ids = sorted({c for c in mine["checkpoint_id"] if isinstance(c, str) and c})
    else:
        ids = list(checkpoint_ids)
    experiments = _experiments_of(prune_runs, ids)
    for cid in ids:
        if not experiments[cid]:
            raise NotFoundError(f"no prune run in the results store wrote checkpoint {cid!r}")
    found: dict[str, Any] = {}
    written = []
    for cid in ids:
        rows: list[dict[str, Any]] = []
        for name in experiments[cid]:
            if name not in found:
                found[name] = client.results("findings", experiment=name)
            frame = found[name]
            rows += frame[frame["checkpoint_id"] == cid].to_dict("records")
        path = _write(client, cid, rows)
        if path is not None:
            written.append(path)
    return written
