"""Failures inside a library (lm-eval, transformers, torch) that say what and where.

``AssertionError()`` from deep inside lm-eval reaches a user as ``AssertionError: `` with no
text. :func:`library_failures` turns any unexpected exception into a :class:`LibraryError`
naming what the job was doing (task, checkpoint), the exception type, its message (for an
empty assertion, the source of the failing line) and the innermost ``file:line``. The full
traceback goes to the log (the service log), never into the job's error.
"""

from __future__ import annotations

import contextlib
import linecache
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from greenprune.core.errors import GreenpruneError

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 600


class LibraryError(GreenpruneError):
    """A library failed inside a job; the message says what, where and doing what (INTERNAL)."""


def _short_path(filename: str) -> str:
    """``.../site-packages/lm_eval/models/huggingface.py`` -> ``lm_eval/models/huggingface.py``."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    return "/".join(parts[-3:])


def describe(exc: BaseException, doing: str = "") -> str:
    """One line: ``doing: Type: message (at pkg/file.py:123)``, at most MAX_MESSAGE_CHARS."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    text = str(exc).strip()
    if frames:
        last = frames[-1]
        where = f"{_short_path(last.filename)}:{last.lineno}"
        if not text:
            source = (last.line or linecache.getline(last.filename, last.lineno or 0)).strip()
            text = f"failed: {source}" if source else "(no message)"
    elif not text:
        text = "(no message)"
    text = " ".join(text.split())
    message = f"{type(exc).__name__}: {text}"
    if where:
        message += f" (at {where})"
    if doing:
        message = f"{doing}: {message}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return message


@contextlib.contextmanager
def library_failures(doing: str | Callable[[], str]) -> Iterator[None]:
    """Re-raises unexpected exceptions as :class:`LibraryError` saying ``doing`` and where.

    Args:
        doing: What the code inside does, e.g. ``"task 'greenprune_facts' on checkpoint c1"``,
            or a callable returning it when the exception happens (the latest stage).

    GreenpruneError passes unchanged (it already says what is wrong); a LibraryError raised
    further in gets ``doing`` prefixed, so nested uses read outermost first.
    """
    try:
        yield
    except LibraryError as exc:
        context = doing() if callable(doing) else doing
        raise LibraryError(f"{context}, {exc}" if context else str(exc)) from exc
    except GreenpruneError:
        raise
    except Exception as exc:
        context = doing() if callable(doing) else doing
        log.error("library failure while %s", context or "running a job", exc_info=exc)
        raise LibraryError(describe(exc, context)) from exc
