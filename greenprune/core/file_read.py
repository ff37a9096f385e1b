"""Reading a file someone else chose: regular files only, bounded, checked before reading.

A path can name a directory, a FIFO (whose ``open`` blocks until a writer comes), a device
(``/dev/zero`` never ends) or a symbolic link planted to lead elsewhere. :func:`read_regular_file`
opens without blocking, checks what the descriptor is and how large it says it is, and only
then reads, never more than the limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from greenprune.core.errors import GreenpruneError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RefusedFileError(GreenpruneError):
    """A file, or a place in it, that greenprune will not read.

    Args:
        name: The file as the caller names it in messages.
        rule: What is wrong.
        line: The 1-based line, when the refusal is about a place in the file.
        where: The key path inside the document (``pruning.ratios[2]``), when known.
    """

    def __init__(self, name: str, rule: str, line: int | None = None, where: str = "") -> None:
        self.name, self.rule, self.line, self.where = name, rule, line, where
        at = f"{name}:{line}" if line is not None else name
        super().__init__(f"{at}: {where + ': ' if where else ''}{rule}")


def describe_kind(mode: int) -> str | None:
    """What a file mode is when it is not a regular file (``a directory``), else None."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_regular_file(
    path: str | Path, max_bytes: int, *, name: str | None = None, follow_links: bool = True
) -> tuple[bytes, os.stat_result]:
    """Returns a regular file's bytes and its status, refusing anything else before reading.

    Args:
        path: The file.
        max_bytes: The most bytes read; a larger file is refused without being read.
        name: How messages name the file (default: ``path``).
        follow_links: Whether a symbolic link as the last part of ``path`` is followed.

    Raises:
        FileNotFoundError: Nothing exists at ``path``.
        RefusedFileError: A directory, FIFO, device, socket or (``follow_links=False``) link,
            a file over ``max_bytes``, or one the OS will not open.
    """
    label = name if name is not None else str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise RefusedFileError(label, "is a symbolic link; links are not followed") from None
        reason = exc.strerror or type(exc).__name__
        raise RefusedFileError(label, f"cannot be opened: {reason}") from None
    except ValueError as exc:  # an embedded NUL
        raise RefusedFileError(label, f"is not a usable path: {exc}") from None
    try:
        status = os.fstat(descriptor)
        kind = describe_kind(status.st_mode)
        if kind is not None:
            raise RefusedFileError(label, f"is {kind}, not a regular file")
        if status.st_size > max_bytes:
            raise RefusedFileError(
                label, f"is {status.st_size} bytes, larger than the {max_bytes} allowed"
            )
        os.set_blocking(descriptor, True)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(descriptor, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise RefusedFileError(label, f"grew past the {max_bytes} bytes allowed while read")
        return b"".join(chunks), status
    except OSError as exc:
        raise RefusedFileError(label, f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
