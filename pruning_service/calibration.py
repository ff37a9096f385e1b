"""Calibration data and the gradients Taylor importance needs.

Texts come from the reference corpus (``greenprune.core.reference.calibration_texts``) or a
local UTF-8 text file under the models root. They are tokenised, packed end to end
(separated by the EOS token) and cut into ``samples`` windows of ``sequence_length`` tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import check_text, quoted

REFERENCE_SOURCE = "reference"
SOURCE_FIELD = "spec.calibration.source"
MAX_FILE_BYTES = 64 * 1024 * 1024
BATCH_SIZE = 1
"""Windows per backward pass: one keeps activation memory small next to the gradients."""
_MAX_DOUBLINGS = 12


def resolve_text_file(source: str, models_root: Path) -> Path:
    """The calibration text file a source names; it must exist under the models root.

    Raises:
        InvalidArgumentError: ``spec.calibration.source`` is outside the root or missing.
    """
    check_text(SOURCE_FIELD, source)
    root = Path(models_root).expanduser().resolve()
    try:
        given = Path(source).expanduser()
        path = (given if given.is_absolute() else root / given).resolve()
        is_file = path.is_file()  # raises for names the OS refuses (ENAMETOOLONG)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InvalidArgumentError(
            SOURCE_FIELD, f"{quoted(source)} is not a usable path ({reason})"
        ) from None
    if not path.is_relative_to(root):
        raise InvalidArgumentError(SOURCE_FIELD, f"{quoted(source)} is outside the models root")
    if not is_file:
        raise InvalidArgumentError(
            SOURCE_FIELD, f"{source!r} is neither 'reference' nor a text file under the models root"
        )
    return path


def calibration_tokens(
    tokenizer: Any,
    *,
    source: str,
    samples: int,
    sequence_length: int,
    seed: int,
    models_root: Path,
) -> torch.Tensor:
    """Token windows for calibration.

    Returns:
        A ``(n, sequence_length)`` tensor of token ids with ``1 <= n <= samples``.

    Raises:
        InvalidArgumentError: The source yields not even one full window.
    """
    needed = samples * sequence_length
    if source == REFERENCE_SOURCE:
        from greenprune.core.reference import calibration_texts

        count = samples
        for _ in range(_MAX_DOUBLINGS):
            ids = _pack(tokenizer, calibration_texts(count, seed))
            if len(ids) >= needed:
                break
            count *= 2
    else:
        path = resolve_text_file(source, models_root)
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_FILE_BYTES)
        ids = _pack(tokenizer, [text], separate=False)
    windows = len(ids) // sequence_length
    if windows == 0:
        raise InvalidArgumentError(
            SOURCE_FIELD, f"yields {len(ids)} tokens, fewer than one window of {sequence_length}"
        )
    tokens = torch.tensor(ids[: windows * sequence_length], dtype=torch.long)
    tokens = tokens.view(windows, sequence_length)
    if windows > samples:
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(windows, generator=generator)[:samples].sort().values
        tokens = tokens[chosen]
    return tokens


def _pack(tokenizer: Any, texts: Iterable[str], *, separate: bool = True) -> list[int]:
    """Token ids of the texts end to end, EOS between texts when ``separate``.

    Each text is tokenised line by line, so long files do not trip the tokenizer's
    maximum-length warning.
    """
    separator = [tokenizer.eos_token_id] if separate and tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        if lines:
            for line_ids in tokenizer(lines, add_special_tokens=False)["input_ids"]:
                ids.extend(line_ids)
        ids.extend(separator)
    return ids


def accumulate_gradients(
    model: nn.Module,
    tokens: torch.Tensor,
    parameters: list[nn.Parameter],
    progress: Callable[[float], None] = lambda fraction: None,
) -> None:
    """Accumulates the language-model loss gradient of ``parameters`` over ``tokens``.

    Only ``parameters`` receive gradients (everything else is frozen for the pass), and
    the loss is averaged over batches so that the scale does not depend on their number.
    """
    wanted = {id(p) for p in parameters}
    previous = {name: p.requires_grad for name, p in model.named_parameters()}
    device = next(model.parameters()).device
    batches = list(torch.split(tokens, BATCH_SIZE))
    with _checkpointed_without_dropout(model):
        try:
            for p in model.parameters():
                p.requires_grad_(id(p) in wanted)
                p.grad = None
            for index, batch in enumerate(batches):
                batch = batch.to(device)
                loss = model(input_ids=batch, labels=batch, use_cache=False).loss
                (loss / len(batches)).backward()
                progress((index + 1) / len(batches))
        finally:
            for name, p in model.named_parameters():
                p.requires_grad_(previous[name])


@contextlib.contextmanager
def _checkpointed_without_dropout(model: nn.Module) -> Iterator[None]:
    """Recomputes layer activations in the backward pass instead of keeping them.

    Transformers checkpoints only in training mode, so the model is put in training mode
    for the pass with every dropout probability set to zero, and restored afterwards.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        yield
        return
    saved: list[tuple[nn.Module, str, float]] = []
    for module in model.modules():
        for attribute in ("p", "attention_dropout", "dropout"):
            value = getattr(module, attribute, None)
            if isinstance(value, float) and value > 0.0:
                saved.append((module, attribute, value))
                setattr(module, attribute, 0.0)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    try:
        yield
    finally:
        model.activation_checkpointing_disable()
        model.eval()
        for module, attribute, value in saved:
            setattr(module, attribute, value)
