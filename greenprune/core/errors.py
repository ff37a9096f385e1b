"""Domain errors shared by every service.

Domain modules raise these; the gRPC layer (``greenprune.rpc.errors``) is the one place that
maps them to status codes. None of them carries a traceback onto the wire.
"""

from __future__ import annotations


class GreenpruneError(Exception):
    """Base class of every error greenprune raises on purpose."""


class InvalidArgumentError(GreenpruneError):
    """A request field has a value the service cannot accept.

    Args:
        field: Dotted path of the offending field, for example ``spec.ratio``.
        message: What is wrong and, where possible, what would be accepted.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(GreenpruneError):
    """A named resource (job, checkpoint, run, model) does not exist."""


class FailedPreconditionError(GreenpruneError):
    """The request is valid but the system is not in a state to serve it."""


class ResourceExhaustedError(GreenpruneError):
    """A bounded resource (the job queue, say) is full."""


class UnauthenticatedError(GreenpruneError):
    """The caller did not present the required credentials."""
