"""An lm-eval LM that meters the energy of the wrapped model's own work and counts its tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.api.model import LM, TemplateLM

from greenprune.core.energy.meter import EnergyMeter
from greenprune.core.energy.readings import WindowReading


class MeteredLM(LM):
    """Delegates lm-eval's three request types to an inner LM inside an energy window each.

    Only the inner model's calls are metered: request building, metric computation and token
    counting happen outside the windows. Tokens are counted with the tokenizer, without special
    tokens: context plus continuation for ``loglikelihood``, the whole text for
    ``loglikelihood_rolling``, context plus generated text for ``generate_until``.

    In warm-up mode (:meth:`warmup`) nothing is metered and only the first requests reach the
    model; the others get placeholder answers, so the run's metrics are meaningless and must be
    discarded.

    Args:
        inner: The LM doing the work, usually lm-eval's ``HFLM``.
        tokenizer: The model's Hugging Face tokenizer, for counting tokens.
        meter: The meter that opens a window around each call.
    """

    def __init__(self, inner: LM, tokenizer: Any, meter: EnergyMeter) -> None:
        super().__init__()
        self._inner = inner
        self._tokenizer = tokenizer
        self._meter = meter
        self._warmup_requests: int | None = None
        self.readings: list[WindowReading] = []
        self.tokens = 0
        self.requests = 0

    # ---------------------------------------------------------------- control
    def reset(self) -> None:
        """Forget the readings and counts of earlier calls (start of a repeat)."""
        self.readings = []
        self.tokens = 0
        self.requests = 0

    def warmup(self, requests: int | None) -> None:
        """Enter warm-up mode, letting ``requests`` requests per call through; None leaves it."""
        self._warmup_requests = requests

    def measurement(self) -> WindowReading:
        """The windows since the last :meth:`reset`, combined."""
        return WindowReading.combine(self.readings)

    # ---------------------------------------------------------------- lm-eval API
    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        """Log-likelihood of each (context, continuation) pair, metered."""
        if self._warmup_requests is not None:
            return self._warm(requests, self._inner.loglikelihood, (0.0, False))
        tokens = self._count([c for r in requests for c in r.args[:2]])
        return self._metered(requests, self._inner.loglikelihood, tokens)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        """Rolling log-likelihood of each whole text, metered."""
        if self._warmup_requests is not None:
            return self._warm(requests, self._inner.loglikelihood_rolling, 0.0)
        tokens = self._count([r.args[0] for r in requests])
        return self._metered(requests, self._inner.loglikelihood_rolling, tokens)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation for each context, metered; counts context and generated tokens."""
        if self._warmup_requests is not None:
            return self._warm(requests, self._inner.generate_until, "")
        tokens = self._count([r.args[0] for r in requests])
        outputs = self._metered(requests, self._inner.generate_until, tokens)
        self.tokens += self._count([o for o in outputs if isinstance(o, str)])
        return outputs

    # ---------------------------------------------------------------- delegation
    @property
    def device(self) -> Any:
        """The inner LM's device."""
        return self._inner.device

    @property
    def tokenizer_name(self) -> str:
        """The inner LM's tokenizer name (chat templates, request caches)."""
        return self._inner.tokenizer_name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The inner LM's chat template."""
        return self._inner.chat_template(chat_template)

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Formats a chat with the inner LM's template."""
        return self._inner.apply_chat_template(chat_history, add_generation_prompt)

    def get_model_info(self) -> dict[str, Any]:
        """The inner LM's model info, when it has any."""
        info = getattr(self._inner, "get_model_info", None)
        return info() if callable(info) else {}

    # ---------------------------------------------------------------- internals
    def _call(self, method: Callable[..., list[Any]], requests: list[Any]) -> list[Any]:
        if isinstance(self._inner, TemplateLM):
            return method(requests, disable_tqdm=True)
        return method(requests)

    def _metered(
        self, requests: list[Any], method: Callable[..., list[Any]], tokens: int
    ) -> list[Any]:
        with self._meter.window() as reading:
            outputs = self._call(method, requests)
        self.readings.append(reading)
        self.tokens += tokens
        self.requests += len(requests)
        return outputs

    def _warm(
        self, requests: list[Any], method: Callable[..., list[Any]], filler: Any
    ) -> list[Any]:
        head = requests[: self._warmup_requests]
        outputs = list(self._call(method, head)) if head else []
        return outputs + [filler] * (len(requests) - len(head))

    def _count(self, texts: Sequence[str]) -> int:
        """Tokens in ``texts``; repeated texts (a question per choice) are encoded once."""
        counts = Counter(texts)
        if not counts:
            return 0
        unique = list(counts)
        encoded = self._tokenizer(unique, add_special_tokens=False)["input_ids"]
        return sum(len(ids) * counts[text] for ids, text in zip(encoded, unique, strict=True))
