"""A byte-level BPE tokenizer trained locally on the synthetic corpus."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE tokenizer; the same texts always give the same tokenizer.

    Byte-level BPE encodes any text without unknown tokens, so real lm-eval tasks work too.
    The end-of-text token doubles as the BOS token (never added automatically), and a separate
    pad token keeps padding apart from document boundaries.

    Args:
        texts: The training texts.
        vocab_size: The largest vocabulary the trainer may build (it stops earlier when no
            pair occurs at least twice).
        model_max_length: The context length recorded in the tokenizer.

    Returns:
        A fast tokenizer that ``save_pretrained`` writes and ``AutoTokenizer`` reloads.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Writes the tokenizer files (``tokenizer.json`` and its config) into ``out_dir``."""
    tokenizer.save_pretrained(str(out_dir))
