"""Trains, saves and caches the reference tiny Llama.

The model is rebuilt only when the hash of its recipe (model dimensions, training settings and
the training corpus) differs from the one recorded next to the cached weights. Builds run under
an exclusive file lock, into a temporary folder that is renamed into place, so two processes
asking at once get one build and nobody ever sees a half-written model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from greenprune.core.errors import NotFoundError
from greenprune.core.reference.world import corpus_digest, training_lines

if TYPE_CHECKING:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

FORMAT_VERSION = 1
MANIFEST_NAME = "greenprune_reference.json"
WEIGHTS_NAME = "model.safetensors"
Log = Callable[[str], None]


@dataclass(frozen=True)
class _Separators:
    """Token ids that join lines (newline), end documents (EOS) and fill blocks (pad)."""

    newline: int
    eos: int
    pad: int


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the reference model's weights.

    Attributes:
        hidden_size: Width of the residual stream.
        intermediate_size: Width of each MLP.
        num_hidden_layers: Decoder layers.
        num_attention_heads: Query heads per layer.
        num_key_value_heads: Key/value heads per layer (fewer than query heads: GQA).
        context_length: Training block length and ``max_position_embeddings``.
        max_vocab_size: Upper bound for the BPE vocabulary.
        max_lines_per_document: Training documents join one to this many corpus lines.
        steps: Optimiser steps.
        batch_size: Blocks per step.
        learning_rate: Peak AdamW learning rate.
        warmup_steps: Linear warm-up steps before the cosine decay.
        weight_decay: AdamW weight decay.
        seed: Seeds the initial weights and the order of the training data.
        threads: Torch threads while training (fixed, so that results repeat).
    """

    hidden_size: int = 256
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    context_length: int = 128
    max_vocab_size: int = 1024
    max_lines_per_document: int = 4
    steps: int = 700
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 35
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2

    def digest(self) -> str:
        """The sha256 that decides whether a cached model is still current."""
        payload = {"format": FORMAT_VERSION, "recipe": asdict(self), "corpus": corpus_digest()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def shortened(self, steps: int = 4) -> Recipe:
        """The same recipe with only ``steps`` optimiser steps (for quick tests)."""
        return replace(self, steps=steps, warmup_steps=min(self.warmup_steps, steps))


@dataclass(frozen=True)
class BuildReport:
    """What a build produced.

    Attributes:
        seconds: Wall time of the whole build (tokenizer, training, saving).
        parameters: Parameter count of the model.
        weights_sha256: sha256 of the saved ``model.safetensors``.
        final_loss: Mean training loss over the last tenth of the steps.
        recipe_hash: ``Recipe.digest()`` of the recipe that was built.
    """

    seconds: float
    parameters: int
    weights_sha256: str
    final_loss: float
    recipe_hash: str


RECIPES: dict[str, Recipe] = {"tiny-llama": Recipe()}


def reference_model_names() -> list[str]:
    """Names of the reference models (``reference:<name>`` in experiment files)."""
    return sorted(RECIPES)


def default_cache_dir() -> Path:
    """The cache root: ``$GREENPRUNE_CACHE_DIR`` or ``~/.cache/greenprune``."""
    configured = os.environ.get("GREENPRUNE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "greenprune"


def _recorded_hash(model_dir: Path) -> str | None:
    """The recipe hash recorded in a built model folder, or None when there is none."""
    try:
        manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not (model_dir / WEIGHTS_NAME).is_file():
        return None
    recipe_hash = manifest.get("recipe_hash") if isinstance(manifest, dict) else None
    return recipe_hash if isinstance(recipe_hash, str) else None


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_reference_model(
    name: str = "tiny-llama",
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    log: Log | None = None,
) -> Path:
    """Returns the Hugging Face folder of a reference model, building it when needed.

    Args:
        name: One of ``reference_model_names()``.
        cache_dir: The cache root (default ``default_cache_dir()``); the model lives in
            ``<root>/models/reference-<name>``.
        force: Rebuild even when the cached model is current.
        log: Receives progress messages while building.

    Returns:
        The model folder (config, safetensors weights, tokenizer, ``greenprune_reference.json``).

    Raises:
        NotFoundError: ``name`` is not a reference model.
    """
    recipe = RECIPES.get(name)
    if recipe is None:
        known = ", ".join(reference_model_names())
        raise NotFoundError(f"no reference model named {name!r} (known: {known})")
    models_dir = (cache_dir if cache_dir is not None else default_cache_dir()) / "models"
    target = models_dir / f"reference-{name}"
    wanted = recipe.digest()
    if not force and _recorded_hash(target) == wanted:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(models_dir / f".reference-{name}.lock"):
        if not force and _recorded_hash(target) == wanted:
            return target
        for stale in models_dir.glob(f".reference-{name}.*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".reference-{name}.build-", dir=models_dir))
        try:
            if log is not None:
                log(f"building reference model {name} into {target}")
            build_reference_model(staging, recipe, log=log)
            _make_readable(staging)
            _move_into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _make_readable(folder: Path) -> None:
    """Opens a private temporary folder (mode 0700) to every reader, like a normal folder."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _move_into_place(staging: Path, target: Path) -> None:
    """Renames ``staging`` to ``target``, replacing an older build if there is one."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, retired)
        os.rename(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, target)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _packed_blocks(
    lines: Sequence[list[int]], recipe: Recipe, separators: _Separators, rng: random.Random
) -> Iterator[list[int]]:
    """Yields blocks of ``recipe.context_length`` tokens for training.

    Every pass shuffles the lines and groups them into documents of one to
    ``recipe.max_lines_per_document`` lines joined by newlines and ended by EOS. Documents are
    packed whole (never split across blocks) and the rest of a block is padding, so every block
    starts at the beginning of a line, as evaluation prompts do.
    """
    block = recipe.context_length
    while True:
        order = list(range(len(lines)))
        rng.shuffle(order)
        current: list[int] = []
        start = 0
        while start < len(order):
            count = rng.randint(1, recipe.max_lines_per_document)
            document: list[int] = []
            for index in order[start : start + count]:
                document.extend([*lines[index], separators.newline])
            document[-1] = separators.eos
            document = document[:block]
            start += count
            if len(current) + len(document) > block:
                yield current + [separators.pad] * (block - len(current))
                current = []
            current.extend(document)
        if current:
            yield current + [separators.pad] * (block - len(current))


def _learning_rate(step: int, recipe: Recipe) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    span = max(1, recipe.steps - recipe.warmup_steps)
    progress = (step - recipe.warmup_steps) / span
    return recipe.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def reference_model_config(name: str) -> LlamaConfig:
    """The architecture of a reference model, from its recipe alone (nothing is built).

    Its vocabulary size is the recipe's bound (the trained tokenizer's is at most that), so
    shapes, layer count and context length are those of the built model.

    Raises:
        NotFoundError: ``name`` is not a reference model.
    """
    recipe = RECIPES.get(name)
    if recipe is None:
        known = ", ".join(reference_model_names())
        raise NotFoundError(f"no reference model named {name!r} (known: {known})")
    return _recipe_config(recipe, recipe.max_vocab_size, 0, 0)


def _recipe_config(recipe: Recipe, vocab_size: int, eos_id: int, pad_id: int) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads,
        head_dim=recipe.hidden_size // recipe.num_attention_heads,
        max_position_embeddings=recipe.context_length,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )


def _new_model(recipe: Recipe, vocab_size: int, eos_id: int, pad_id: int) -> LlamaForCausalLM:
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(_recipe_config(recipe, vocab_size, eos_id, pad_id))


def _train(
    model: torch.nn.Module,
    token_lines: Sequence[list[int]],
    recipe: Recipe,
    separators: _Separators,
    log: Log | None,
) -> float:
    """Trains ``model`` in place; returns the mean loss of the last tenth of the steps."""
    import torch

    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=recipe.learning_rate,
        betas=(0.9, 0.95),
        weight_decay=recipe.weight_decay,
    )
    blocks = _packed_blocks(token_lines, recipe, separators, random.Random(recipe.seed))
    tail = max(1, recipe.steps // 10)
    tail_losses: list[float] = []
    model.train()
    for step in range(recipe.steps):
        input_ids = torch.tensor([next(blocks) for _ in range(recipe.batch_size)])
        labels = input_ids.masked_fill(input_ids == separators.pad, -100)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, recipe)
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= recipe.steps - tail:
            tail_losses.append(loss.item())
        if log is not None and (step + 1) % max(1, recipe.steps // 10) == 0:
            log(f"step {step + 1}/{recipe.steps} loss {loss.item():.3f}")
    model.eval()
    return sum(tail_losses) / len(tail_losses)


@contextlib.contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """Fixes the thread count and asks for deterministic kernels, restoring both after."""
    import torch

    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_deterministic)
        torch.set_num_threads(old_threads)


def build_reference_model(
    out_dir: Path, recipe: Recipe | None = None, *, log: Log | None = None
) -> BuildReport:
    """Trains the reference model from scratch and saves it as a Hugging Face folder.

    The same recipe on the same machine gives byte-identical weights.

    Args:
        out_dir: Where to write config, ``model.safetensors``, tokenizer and manifest
            (created if missing).
        recipe: The recipe (default: the ``tiny-llama`` one).
        log: Receives progress messages.

    Returns:
        What was built, also written to ``greenprune_reference.json``.
    """
    import tokenizers
    import torch
    import transformers

    from greenprune.core.reference.tokenizer import save_tokenizer, train_tokenizer

    recipe = recipe or RECIPES["tiny-llama"]
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = training_lines()
    tokenizer = train_tokenizer(lines, recipe.max_vocab_size, recipe.context_length)
    (newline,) = tokenizer("\n")["input_ids"]
    separators = _Separators(newline, tokenizer.eos_token_id, tokenizer.pad_token_id)
    token_lines = [tokenizer(line)["input_ids"] for line in lines]
    with _deterministic_torch(recipe.threads):
        torch.manual_seed(recipe.seed)
        model = _new_model(recipe, len(tokenizer), separators.eos, separators.pad)
        final_loss = _train(model, token_lines, recipe, separators, log)
    model.save_pretrained(str(out_dir))
    save_tokenizer(tokenizer, out_dir)
    report = BuildReport(
        seconds=time.perf_counter() - started,
        parameters=sum(p.numel() for p in model.parameters()),
        weights_sha256=_file_sha256(out_dir / WEIGHTS_NAME),
        final_loss=final_loss,
        recipe_hash=recipe.digest(),
    )
    manifest = {
        "format": FORMAT_VERSION,
        "recipe": asdict(recipe),
        **asdict(report),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if log is not None:
        log(
            f"built in {report.seconds:.0f} s: {report.parameters:,} parameters, "
            f"final loss {final_loss:.3f}"
        )
    return report
