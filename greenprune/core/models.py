"""Where a model named in a spec comes from, and loading it safely.

A spec names a model as ``reference:NAME`` (the embedded reference model), as a directory
under the configured models root (absolute, or relative to that root), or as a hub id
``org/name`` (only useful where the hub is reachable or cached). Loading never runs remote
code and never unpickles: weights must be safetensors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from greenprune.core.errors import InvalidArgumentError, NotFoundError
from greenprune.core.limits import check_text, quoted

REFERENCE_PREFIX = "reference:"
MODEL_FIELD = "spec.model"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_REFERENCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def resolve_model_source(source: str, models_root: Path) -> str | Path:
    """Turns a spec's model string into a local directory or a hub id.

    Args:
        source: ``reference:NAME``, a directory (absolute, or relative to ``models_root``), or
            a hub id ``org/name``.
        models_root: The only directory tree local models may come from.

    Returns:
        The model directory, or the hub id when ``source`` names no local directory.

    Raises:
        InvalidArgumentError: ``spec.model`` is empty, escapes the models root, names a
            missing directory or an unknown reference model, or is none of the above.
    """
    source = source.strip() if isinstance(source, str) else ""
    if not source:
        raise InvalidArgumentError(MODEL_FIELD, "is empty; name a model")
    if source.startswith(REFERENCE_PREFIX):
        return _reference_model_dir(source.removeprefix(REFERENCE_PREFIX))
    local = local_model_path(source, models_root)
    if local is not None:
        return local
    if looks_like_hub_id(source):
        return source
    raise InvalidArgumentError(
        MODEL_FIELD,
        f"{source!r} is not reference:NAME, a directory under the models root, or a hub id",
    )


def local_model_path(source: str, models_root: Path) -> Path | None:
    """The directory a source names under the models root, or None when it names none.

    Raises:
        InvalidArgumentError: The source is a path that resolves outside the models root, or
            an absolute or explicitly relative path that does not exist.
    """
    check_text(MODEL_FIELD, source)
    root = Path(models_root).expanduser().resolve()
    given = Path(source).expanduser()
    candidate = given if given.is_absolute() else root / given
    explicit_path = (
        given.is_absolute() or source.startswith(("./", "../", "~")) or ".." in given.parts
    )
    try:
        resolved = candidate.resolve()
        resolved.exists()  # raises for names the OS refuses (ENAMETOOLONG), unlike ENOENT
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(MODEL_FIELD, f"{quoted(source)} is not a usable path") from exc
    if not resolved.is_relative_to(root):
        if explicit_path or resolved.exists():
            raise InvalidArgumentError(MODEL_FIELD, f"{source!r} is outside the models root")
        return None
    if resolved.is_dir():
        return resolved
    if resolved.exists():
        raise InvalidArgumentError(MODEL_FIELD, f"{source!r} is not a directory")
    if explicit_path or not looks_like_hub_id(source):
        raise InvalidArgumentError(
            MODEL_FIELD, f"no model directory {source!r} under the models root"
        )
    return None


def looks_like_hub_id(source: str) -> bool:
    """Whether a string has the ``org/name`` form of a Hugging Face hub id."""
    return bool(_HUB_ID.match(source)) and ".." not in source


def _reference_model_dir(name: str) -> Path:
    if not _REFERENCE_NAME.match(name):
        raise InvalidArgumentError(MODEL_FIELD, f"bad reference model name {name!r}")
    from greenprune.core.reference import ensure_reference_model

    try:
        return ensure_reference_model(name)
    except NotFoundError as error:
        raise InvalidArgumentError(MODEL_FIELD, str(error)) from error


def read_local_config(model_dir: Path) -> dict[str, Any]:
    """Reads ``config.json`` of a local model directory without loading the model.

    Raises:
        InvalidArgumentError: There is no readable ``config.json``.
    """
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise InvalidArgumentError(
            MODEL_FIELD, f"{str(model_dir)!r} has no readable config.json"
        ) from error
    if not isinstance(config, dict):
        raise InvalidArgumentError(MODEL_FIELD, f"{str(model_dir)!r} has a malformed config.json")
    return config


def is_causal_lm_config(config: dict[str, Any] | Any) -> bool:
    """Whether a config (dict or ``PretrainedConfig``) describes a causal language model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    architectures = get("architectures") or []
    if architectures:
        causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
        return all(name in causal_classes for name in architectures)
    return get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def load_source_model(
    source: str,
    models_root: Path,
    device: str = "cpu",
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Loads a spec's model and tokenizer (safetensors only, no remote code).

    Args:
        source: As for :func:`resolve_model_source`.
        models_root: The only directory tree local models may come from.
        device: Where to put the model.
        dtype: A torch dtype; None keeps the dtype the weights were saved in.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode.

    Raises:
        InvalidArgumentError: ``spec.model`` cannot be resolved, is not a causal language
            model, has no safetensors weights or no tokenizer.
    """
    location = resolve_model_source(source, models_root)
    return load_model_at(location, source, device=device, dtype=dtype)


def load_model_at(
    location: str | Path, source: str, *, device: str = "cpu", dtype: Any = None
) -> tuple[Any, Any]:
    """Loads a resolved model location (see :func:`load_source_model`).

    A greenprune checkpoint directory (one with a manifest) loads through
    :func:`greenprune.core.checkpoint.load_checkpoint`, so pruned models can be pruned again.

    Args:
        location: What :func:`resolve_model_source` returned.
        source: The spec's original string, for error messages.
        device: Where to put the model.
        dtype: A torch dtype; None keeps the dtype the weights were saved in.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from greenprune.core.checkpoint import MANIFEST_NAME, load_checkpoint

    if isinstance(location, Path) and (location / MANIFEST_NAME).is_file():
        model, tokenizer, _ = load_checkpoint(location, device=device, dtype=dtype)
        return model, tokenizer
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise InvalidArgumentError(
            MODEL_FIELD, f"cannot read the config of {source!r}: {error}"
        ) from error
    if not is_causal_lm_config(config):
        raise InvalidArgumentError(MODEL_FIELD, f"{source!r} is not a causal language model")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location,
            config=config,
            dtype=dtype if dtype is not None else "auto",
            trust_remote_code=False,
            use_safetensors=True,
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise InvalidArgumentError(
            MODEL_FIELD, f"cannot load safetensors weights of {source!r}: {error}"
        ) from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        raise InvalidArgumentError(MODEL_FIELD, f"{source!r} has no usable tokenizer") from error
    model.to(device)
    model.eval()
    return model, tokenizer


def check_model_source(source: str, models_root: Path) -> None:
    """Validates a model source without building, downloading or loading anything.

    Raises:
        InvalidArgumentError: ``spec.model`` names no reference model, local model or hub id.
    """
    source = source.strip() if isinstance(source, str) else ""
    if not source:
        raise InvalidArgumentError(MODEL_FIELD, "is empty; name a model")
    check_text(MODEL_FIELD, source)
    if source.startswith(REFERENCE_PREFIX):
        from greenprune.core.reference import reference_model_names

        name = source.removeprefix(REFERENCE_PREFIX)
        if name not in reference_model_names():
            known = ", ".join(reference_model_names())
            raise InvalidArgumentError(MODEL_FIELD, f"no reference model {name!r} (known: {known})")
        return
    if local_model_path(source, models_root) is None and not looks_like_hub_id(source):
        raise InvalidArgumentError(
            MODEL_FIELD,
            f"{source!r} is not reference:NAME, a directory under the models root, or a hub id",
        )
