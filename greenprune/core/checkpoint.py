"""The checkpoint format: a directory addressed by id, written atomically, loaded without pickle.

A checkpoint directory holds ``config.json``, ``model.safetensors`` (or shards plus
``model.safetensors.index.json``), the tokenizer files and ``greenprune.json`` (the
manifest). When every decoder layer has the same shape the config says so, and plain
``AutoModelForCausalLM.from_pretrained`` loads it. When layers differ (some were kept out of
pruning) the config describes the unpruned layers and the manifest lists each layer's heads
and MLP width; :func:`load_checkpoint` then builds the model on the ``meta`` device, resizes
each layer from the manifest, assigns the safetensors weights and rebuilds the rotary
embeddings. A quantized checkpoint (the manifest's ``quantization``) stores each quantized
weight's plain parts and lists their classes in ``quantized_tensors``
(:mod:`greenprune.core.quantized`); :func:`load_checkpoint` rebuilds them the same way.
Depth-pruned checkpoints are uniform: fewer layers, plain ``from_pretrained`` loads them.
Writes go to a hidden temporary directory next to the final one and are renamed
into place, so a checkpoint id never names a half-written directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.core import model_card
from greenprune.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    is_disk_full,
)
from greenprune.core.file_read import RefusedFileError, read_regular_file
from greenprune.core.limits import MANIFEST_MAX_BYTES, MAX_CHECKPOINT_ENTRIES, quoted

MANIFEST_NAME = "greenprune.json"
FORMAT_NAME = "greenprune-checkpoint"
FORMAT_VERSION = 1
DEFAULT_MAX_SHARD_SIZE = "2GB"
TEMPORARY_PREFIX = ".tmp-"
_CHECKPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_WEIGHT_SUFFIX = ".safetensors"
_FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def validate_checkpoint_id(checkpoint_id: str, field: str = "checkpoint_id") -> str:
    """Checks that a checkpoint id is a safe single path component.

    Args:
        checkpoint_id: The id.
        field: The request field named when it is refused.

    Raises:
        InvalidArgumentError: ``checkpoint_id`` is empty, too long, or has characters other
            than letters, digits, ``_``, ``.`` and ``-`` (or starts with ``.``, ``_``, ``-``).
    """
    if not isinstance(checkpoint_id, str) or not _CHECKPOINT_ID.match(checkpoint_id):
        raise InvalidArgumentError(
            field,
            f"{quoted(checkpoint_id)} is not a checkpoint id (1-128 of [A-Za-z0-9_.-], "
            "starting with a letter or digit)",
        )
    return checkpoint_id


def checkpoint_dir(checkpoints_dir: Path, checkpoint_id: str, field: str = "checkpoint_id") -> Path:
    """The directory of an existing checkpoint, refused when a link leads out of it.

    Checkpoints are written by this code, which never writes a symbolic link: a checkpoint
    folder, manifest or file that is one was planted, and could lead anywhere on the server,
    so it is refused rather than followed.

    Args:
        checkpoints_dir: Where checkpoints live.
        checkpoint_id: The id.
        field: The request field named when the id is malformed.

    Raises:
        InvalidArgumentError: The id is malformed.
        NotFoundError: No complete checkpoint has this id.
        FailedPreconditionError: The checkpoint's folder, or something in it, is a link.
    """
    path = Path(checkpoints_dir) / validate_checkpoint_id(checkpoint_id, field)
    folder = _lstat(path)
    if folder is not None and stat.S_ISLNK(folder.st_mode):
        raise FailedPreconditionError(f"checkpoint {checkpoint_id!r} is a symbolic link; refused")
    manifest = _lstat(path / MANIFEST_NAME) if folder is not None else None
    if folder is None or not stat.S_ISDIR(folder.st_mode) or manifest is None:
        raise NotFoundError(f"no checkpoint {checkpoint_id!r}")
    _refuse_links(path, checkpoint_id)
    return path


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (OSError, ValueError):
        return None


def _refuse_links(path: Path, checkpoint_id: str) -> None:
    """Refuses a checkpoint folder holding a symbolic link, or more entries than any holds."""
    count = 0
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in [*dirs, *files]:
            count += 1
            if count > MAX_CHECKPOINT_ENTRIES:
                raise FailedPreconditionError(
                    f"checkpoint {checkpoint_id!r} holds more than {MAX_CHECKPOINT_ENTRIES} files"
                )
            if os.path.islink(os.path.join(folder, name)):
                inside = os.path.relpath(os.path.join(folder, name), path)
                raise FailedPreconditionError(
                    f"checkpoint {checkpoint_id!r} holds a symbolic link ({inside!r}); refused"
                )


@dataclass(frozen=True)
class ManifestFile:
    """A checkpoint manifest as read.

    Attributes:
        manifest: The parsed manifest.
        text: Its text, as stored.
        modified: When it was written (seconds since the epoch).
    """

    manifest: dict[str, Any]
    text: str
    modified: float


def read_manifest_file(path: Path) -> ManifestFile:
    """Reads a checkpoint's ``greenprune.json``: a regular file, never through a link.

    Raises:
        NotFoundError: The directory has no manifest.
        FailedPreconditionError: The manifest is a link, too large, not UTF-8, not JSON, or of
            another format.
    """
    where = str(path)
    try:
        content, status = read_regular_file(
            Path(path) / MANIFEST_NAME, MANIFEST_MAX_BYTES, name=MANIFEST_NAME, follow_links=False
        )
    except FileNotFoundError as error:
        raise NotFoundError(f"no checkpoint manifest in {where!r}") from error
    except RefusedFileError as error:
        raise FailedPreconditionError(
            f"the checkpoint manifest in {where!r} {error.rule}"
        ) from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FailedPreconditionError(
            f"the checkpoint manifest in {where!r} is not UTF-8 text (byte {error.start})"
        ) from None
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise FailedPreconditionError(f"corrupt checkpoint manifest in {where!r}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise FailedPreconditionError(f"{where!r} is not a greenprune checkpoint")
    return ManifestFile(manifest, text, status.st_mtime)


def read_manifest(path: Path) -> dict[str, Any]:
    """Reads a checkpoint's ``greenprune.json`` (see :func:`read_manifest_file`)."""
    return read_manifest_file(path).manifest


def weight_files(path: Path) -> list[Path]:
    """The safetensors weight files of a checkpoint directory, sorted by name."""
    return sorted(p for p in Path(path).iterdir() if p.name.endswith(_WEIGHT_SUFFIX))


def weights_content_hash(path: Path) -> tuple[str, dict[str, str]]:
    """The sha256 of every weight file and one hash over all of them.

    Returns:
        ``("sha256:<hex>", {file name: hex digest})``; the combined hash covers the sorted
        ``name digest`` lines, so it changes when any weight file changes.
    """
    digests: dict[str, str] = {}
    for file in weight_files(path):
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 22), b""):
                digest.update(block)
        digests[file.name] = digest.hexdigest()
    combined = hashlib.sha256(
        "".join(f"{name} {value}\n" for name, value in sorted(digests.items())).encode()
    )
    return f"sha256:{combined.hexdigest()}", digests


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    manifest: dict[str, Any],
    checkpoints_dir: Path,
    checkpoint_id: str,
    *,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
) -> Path:
    """Writes a checkpoint atomically and returns its directory.

    The manifest is completed with ``format``, ``format_version``, ``checkpoint_id``,
    ``bytes_on_disk`` (every file but the manifest and the model card), ``content_hash`` and
    ``weight_files``. The model card (``README.md``, :mod:`greenprune.core.model_card`) is
    written from the completed manifest, without verdicts yet; it is not hashed, so rewriting it
    later with the verdicts leaves the content hash as it is.

    Args:
        model: The (pruned) model; its config must already describe uniform shapes when the
            manifest says ``uniform``.
        tokenizer: Saved next to the weights.
        manifest: What greenprune records about the checkpoint (JSON-serialisable).
        checkpoints_dir: The directory holding all checkpoints.
        checkpoint_id: The new checkpoint's id.
        max_shard_size: Largest weight shard, as ``save_pretrained`` takes it.

    Returns:
        The checkpoint directory.

    Raises:
        InvalidArgumentError: The id is malformed.
        FailedPreconditionError: A checkpoint with this id exists already.
    """
    from transformers.utils import logging as hf_logging

    validate_checkpoint_id(checkpoint_id)
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / checkpoint_id
    if final.exists():
        raise FailedPreconditionError(f"checkpoint {checkpoint_id!r} exists already")
    needed = _weight_bytes(model) + _SPACE_MARGIN_BYTES
    _check_free_space(checkpoints_dir, needed, f"checkpoint {checkpoint_id!r}")
    staging = Path(
        tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{checkpoint_id}-", dir=checkpoints_dir)
    )
    try:
        hf_logging.disable_progress_bar()
        quantized: dict[str, Any] = {}
        if manifest.get("quantization"):
            quantized = _save_quantized(model, staging)
        else:
            model.save_pretrained(staging, max_shard_size=max_shard_size)
        tokenizer.save_pretrained(staging)
        forbidden = [p.name for p in staging.iterdir() if p.name.endswith(_FORBIDDEN_SUFFIXES)]
        if forbidden:
            raise FailedPreconditionError(f"refusing to write pickle files: {forbidden}")
        content_hash, digests = weights_content_hash(staging)
        complete = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "checkpoint_id": checkpoint_id,
            **manifest,
            "bytes_on_disk": sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()),
            "content_hash": content_hash,
            "weight_files": digests,
            **({"quantized_tensors": quantized} if quantized else {}),
        }
        _write_text_durably(staging / MANIFEST_NAME, json.dumps(complete, indent=2) + "\n")
        _write_text_durably(staging / model_card.CARD_NAME, model_card.render_card(complete))
        _fsync_tree(staging)
        os.rename(staging, final)
        _fsync_directory(checkpoints_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(exc):  # safetensors says so in an error of its own, not an OSError
            where = getattr(exc, "filename", None) or staging
            raise ResourceExhaustedError(
                f"no space left writing {where}: checkpoint {checkpoint_id!r}"
                f" needs about {_mib(needed)}, {_mib(_free_bytes(checkpoints_dir))} free"
            ) from exc
        raise
    return final


_SPACE_MARGIN_BYTES = 16 * 1024 * 1024
"""Room for the tokenizer, config and manifest next to the weights."""


def _weight_bytes(model: Any) -> int:
    """The bytes of the model's tensors as they are in memory (an estimate of the files)."""
    total = 0
    for _, tensor in _named_tensors(model):
        try:
            total += tensor.numel() * tensor.element_size()
        except (AttributeError, NotImplementedError, RuntimeError):
            continue  # a tensor subclass (a quantized weight) that cannot say; the margin covers
    return total


def _mib(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuses to start writing ``what`` into ``folder`` when it cannot fit."""
    free = _free_bytes(folder)
    if free < needed:
        raise ResourceExhaustedError(
            f"no space for {what} in {folder}: it needs about {_mib(needed)}, {_mib(free)} free"
        )


def remove_stale_temporaries(checkpoints_dir: Path) -> int:
    """Deletes half-written checkpoint directories left by a crash; returns how many."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return 0
    removed = 0
    for entry in checkpoints_dir.iterdir():
        if entry.name.startswith(TEMPORARY_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def load_checkpoint(
    path: Path,
    device: str = "cpu",
    dtype: Any = None,
    *,
    verify_hash: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Loads a checkpoint (uniform or not) without pickle or remote code.

    Args:
        path: The checkpoint directory.
        device: Where to put the model.
        dtype: A torch dtype; None keeps the saved dtype.
        verify_hash: Re-hash the weight files and compare with the manifest first.

    Returns:
        ``(model, tokenizer, manifest)``, the model in eval mode.

    Raises:
        NotFoundError: ``path`` holds no checkpoint.
        FailedPreconditionError: The weights do not match the manifest's hash, or the
            architecture is not supported.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    manifest = read_manifest(path)
    if verify_hash and weights_content_hash(path)[0] != manifest.get("content_hash"):
        raise FailedPreconditionError(f"weights in {str(path)!r} do not match the manifest")
    if manifest.get("quantization"):
        model = _load_assigned(path, manifest, dtype, device)
    elif manifest.get("uniform", True):
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype if dtype is not None else "auto",
            trust_remote_code=False,
            use_safetensors=True,
        )
    else:
        model = _load_assigned(path, manifest, dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model.to(device)
    model.eval()
    return model, tokenizer, manifest


def export_refusal(manifest: dict[str, Any]) -> str | None:
    """Why plain transformers cannot load a checkpoint and what to use instead; None when it can.

    Args:
        manifest: The checkpoint's manifest.
    """
    plain, why = model_card.loading(manifest)
    if plain:
        return None
    checkpoint_id = manifest.get("checkpoint_id", "?")
    instead = (
        "load it where greenprune is installed with "
        "`from greenprune.core.checkpoint import load_checkpoint; "
        f'model, tokenizer, manifest = load_checkpoint("<folder of {checkpoint_id}>")`'
    )
    if manifest.get("quantization"):
        instead += ", or export the unquantized checkpoint of the same method and ratio"
    else:
        instead += (
            ", or prune again with pruning.keep_first_layers: 0 and keep_last_layers: 0, which "
            "writes a uniform checkpoint that plain transformers loads"
        )
    return (
        f"checkpoint {checkpoint_id!r} cannot be exported for plain transformers: {why}. "
        f"Instead, {instead}."
    )


def export_checkpoint(path: Path, destination: Path) -> Path:
    """Copies a checkpoint plain ``from_pretrained`` loads into ``destination``.

    The copy holds every file of the checkpoint (weights, config, tokenizer, the manifest and
    the model card); its weights are hashed against the manifest before it is renamed into
    place, so ``destination`` never holds a partial or corrupted copy.

    Args:
        path: The checkpoint folder.
        destination: A folder that does not exist yet (or is empty).

    Returns:
        ``destination``.

    Raises:
        FailedPreconditionError: Plain transformers cannot load the checkpoint (the message
            says why and what to use instead), ``destination`` holds files, or the copy's weights
            do not match the manifest. Nothing is written then.
    """
    path, destination = Path(path), Path(destination)
    manifest = read_manifest(path)
    refusal = export_refusal(manifest)
    if refusal is not None:
        raise FailedPreconditionError(refusal)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FailedPreconditionError(f"{str(destination)!r} exists and is not an empty folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.export-", dir=destination.parent))
    try:
        for entry in sorted(path.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_file():
                continue
            shutil.copy2(entry, staging / entry.name)
        if weights_content_hash(staging)[0] != manifest.get("content_hash"):
            raise FailedPreconditionError(
                f"the weights copied from {str(path)!r} do not match its manifest's content hash"
            )
        _fsync_tree(staging)
        if destination.exists():
            destination.rmdir()
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def _save_quantized(model: Any, staging: Path) -> dict[str, Any]:
    """Writes a quantized model's config and weights (plain parts, one safetensors file).

    Returns:
        The manifest's ``quantized_tensors``: class and attributes of each quantized weight.
    """
    from safetensors.torch import save_file

    from greenprune.core.quantized import flatten_state_dict

    model.config.save_pretrained(staging)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(staging)
    state = dict(model.state_dict())
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # the same tensor as the input embeddings
    tensors, described = flatten_state_dict(state)
    save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
    return described


def _load_assigned(path: Path, manifest: dict[str, Any], dtype: Any, device: str = "cpu") -> Any:
    """Builds the architecture on ``meta``, resizes layers from the manifest, assigns weights.

    Serves checkpoints whose layers differ and quantized ones (whose weights are rebuilt from
    their plain parts; see :mod:`greenprune.core.quantized`).
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from greenprune.core.architectures import LayerShape, adapter_for

    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    adapter = adapter_for(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    layers = adapter.decoder_layers(model)
    entries = manifest.get("layers") or []
    if not manifest.get("uniform", True):
        if len(entries) != len(layers):
            raise FailedPreconditionError(
                f"manifest lists {len(entries)} layers, the config {len(layers)}"
            )
        for entry in entries:
            shape = LayerShape(
                attention_heads=int(entry["attention_heads"]),
                key_value_heads=int(entry["key_value_heads"]),
                head_dim=int(entry.get("head_dim", manifest["head_dim"])),
                intermediate_size=int(entry["intermediate_size"]),
            )
            adapter.resize_layer(model, layers[int(entry["index"])], shape)
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(path):
        state.update(load_file(file))
    quantized: dict[str, Any] = {}
    described = manifest.get("quantized_tensors") or {}
    if described:
        from greenprune.core.quantized import unflatten_state_dict

        _check_quantized_device(described, device)
        rebuilt = unflatten_state_dict(state, described)
        quantized = {name: rebuilt.pop(name) for name in described}
        state = rebuilt
    result = model.load_state_dict(state, strict=False, assign=True)
    unexpected = [k for k in result.unexpected_keys if k not in quantized]
    if unexpected:
        raise FailedPreconditionError(f"unexpected weights: {sorted(unexpected)[:5]}")
    for name, tensor in quantized.items():
        owner, _, attribute = name.rpartition(".")
        setattr(
            model.get_submodule(owner), attribute, torch.nn.Parameter(tensor, requires_grad=False)
        )
    model.tie_weights()
    _rebuild_rotary_embeddings(model)
    still_meta = [name for name, t in _named_tensors(model) if t.device.type == "meta"]
    if still_meta:
        raise FailedPreconditionError(f"weights missing from the checkpoint: {still_meta[:5]}")
    if dtype is not None and not described:
        model.to(dtype)
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    return model


def _check_quantized_device(described: dict[str, Any], device: str) -> None:
    """Refuses int4 weights packed for the CPU kernel on another device."""
    classes = {str(entry.get("class")) for entry in described.values()}
    if "Int4OpaqueTensor" in classes and not str(device).startswith("cpu"):
        raise FailedPreconditionError(
            f"this int4 checkpoint is packed for torchao's CPU kernel; load it on the CPU, "
            f"not {device!r}"
        )


def _rebuild_rotary_embeddings(model: Any) -> None:
    """Re-creates rotary-embedding modules, whose buffers are computed, not saved."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("RotaryEmbedding"):
                setattr(parent, name, type(child)(config=child.config))


def _named_tensors(model: Any) -> list[tuple[str, Any]]:
    return list(model.named_parameters()) + list(model.named_buffers())


def _write_text_durably(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_tree(root: Path) -> None:
    for file in root.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_directory(root)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
