"""Domain errors shared by every service and client, and the one map from errors to codes.

Domain modules raise these. Each kind names the canonical status code (``NOT_FOUND``, ...) it
is answered with: :func:`code_name` is the one place that maps an exception to its code, used
by the gRPC layer (``greenprune.rpc.errors``, which adds the wire's message rules) and by the job
workers alike, so core never needs gRPC. A client reading a failed call gets the same kinds
back (:func:`error_for`). None of them carries a traceback onto the wire.
"""

from __future__ import annotations

import errno
import re

INTERNAL = "INTERNAL"
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
"""Codes that mean "the service could not be reached in time": the call may be tried again."""


class GreenpruneError(Exception):
    """Base class of every error greenprune raises on purpose (answered INTERNAL).

    Attributes:
        code_name: The canonical status code name the error is answered with.
        field: The offending request field of an invalid argument, else None.
    """

    code_name = INTERNAL
    field: str | None = None


class InvalidArgumentError(GreenpruneError):
    """A request field has a value the service cannot accept.

    The message is ``field: message``; :meth:`split` reads the field back from it.

    Args:
        field: Dotted path of the offending field, for example ``spec.ratio``.
        message: What is wrong and, where possible, what would be accepted.
    """

    code_name = "INVALID_ARGUMENT"
    _FIELD = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]]*): ")

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    @classmethod
    def split(cls, text: str) -> tuple[str | None, str]:
        """``("spec.ratio", "must be ...")`` from ``"spec.ratio: must be ..."``; no field: None."""
        match = cls._FIELD.match(text)
        if match is None:
            return None, text
        return match.group("field"), text[match.end() :]


class NotFoundError(GreenpruneError):
    """A named resource (job, checkpoint, run, model) does not exist."""

    code_name = "NOT_FOUND"


class FailedPreconditionError(GreenpruneError):
    """The request is valid but the system is not in a state to serve it."""

    code_name = "FAILED_PRECONDITION"


class ResourceExhaustedError(GreenpruneError):
    """A bounded resource (the job queue, the disk, say) is full; try again later."""

    code_name = "RESOURCE_EXHAUSTED"


class UnauthenticatedError(GreenpruneError):
    """The caller did not present the required credentials (``GREENPRUNE_TOKEN``)."""

    code_name = "UNAUTHENTICATED"


class UnavailableError(GreenpruneError):
    """A service could not be reached in time (UNAVAILABLE or DEADLINE_EXCEEDED)."""

    code_name = "UNAVAILABLE"


_KINDS: tuple[type[GreenpruneError], ...] = (
    InvalidArgumentError,
    NotFoundError,
    FailedPreconditionError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)


DISK_FULL_MESSAGES = (
    "no space left on device",  # strerror(ENOSPC), in safetensors' and DuckDB's messages
    "os error 28",  # Rust's io::Error (safetensors)
    "disk quota exceeded",
    "database or disk is full",  # SQLite's SQLITE_FULL
)
"""How libraries that do not raise ``OSError`` say that the disk is full."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the disk or the quota is full.

    An ``OSError`` with ``ENOSPC`` or ``EDQUOT``, or a library's own error (safetensors,
    SQLite, DuckDB) whose message says so.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current).lower()
        if any(message in text for message in DISK_FULL_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def code_name(exc: BaseException) -> str:
    """The canonical code name (``"NOT_FOUND"``, ...) an exception is answered with.

    A greenprune error answers its kind's code; a full disk RESOURCE_EXHAUSTED; anything else
    is unexpected: INTERNAL.
    """
    if isinstance(exc, GreenpruneError):
        return exc.code_name
    if is_disk_full(exc):
        return ResourceExhaustedError.code_name
    return INTERNAL


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed when tried again (its service was unreachable).

    True for connection errors and time-outs, and for an error whose ``code()`` (a gRPC
    error's) or ``code_name`` is in :data:`RETRYABLE_CODES`.
    """
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, GreenpruneError):
        return exc.code_name in RETRYABLE_CODES
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return getattr(code(), "name", None) in RETRYABLE_CODES
        except Exception:  # noqa: BLE001 - an object whose code() fails is no gRPC error
            return False
    return False


def error_for(code: str, details: str) -> GreenpruneError:
    """The error a client raises for a call a service answered with ``code`` and ``details``.

    Its kind is the one the service raised (``NOT_FOUND`` is a :class:`NotFoundError`, the
    retryable codes an :class:`UnavailableError`, an unknown code the base class); its message
    is ``CODE: details``, its ``field`` the invalid argument's, read from ``details``.
    """
    kind = next((k for k in _KINDS if k.code_name == code), GreenpruneError)
    if code in RETRYABLE_CODES:
        kind = UnavailableError
    # Built without the kind's own __init__: the parts an InvalidArgumentError is made of are
    # read back from the details, and the message keeps the code the service answered.
    error = kind.__new__(kind)
    Exception.__init__(error, f"{code}: {details}")
    error.code_name = code
    if kind is InvalidArgumentError:
        field, message = InvalidArgumentError.split(details)
        error.field, error.message = field, message  # type: ignore[attr-defined]
    return error
