"""One error hierarchy and one map to codes, for services, job workers and clients alike."""

from __future__ import annotations

import errno

import grpc
import pytest

from greenprune.client import sdk
from greenprune.core import errors
from greenprune.core.jobs.protocol import error_message
from greenprune.rpc.errors import status_for

RAISED = [
    (errors.InvalidArgumentError("spec.ratio", "must be below 1"), "INVALID_ARGUMENT"),
    (errors.NotFoundError("job 'x' not found"), "NOT_FOUND"),
    (errors.FailedPreconditionError("the cluster has no GPU"), "FAILED_PRECONDITION"),
    (errors.ResourceExhaustedError("the job queue is full"), "RESOURCE_EXHAUSTED"),
    (errors.UnauthenticatedError("no token"), "UNAUTHENTICATED"),
    (errors.GreenpruneError("a library failed"), "INTERNAL"),
]


@pytest.mark.parametrize(("raised", "code"), RAISED, ids=[code for _, code in RAISED])
def test_a_raised_error_reaches_a_client_as_the_same_kind(
    raised: errors.GreenpruneError, code: str
) -> None:
    assert errors.code_name(raised) == code
    assert error_message(raised) == ("error", code, str(raised))  # a job's error
    status, details = status_for(raised)  # an RPC's status
    assert status == grpc.StatusCode[code] and details == str(raised)
    received = errors.error_for(status.name, details)
    assert type(received) is type(raised)
    assert str(received) == f"{code}: {details}" and received.field == raised.field
    if isinstance(raised, errors.InvalidArgumentError):
        assert received.field == "spec.ratio" and received.message == "must be below 1"
    assert sdk.RpcError is errors.GreenpruneError and sdk.NotFoundError is errors.NotFoundError


def test_a_full_disk_and_an_unexpected_error_have_their_codes() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/state/jobs.sqlite")
    assert errors.code_name(full) == "RESOURCE_EXHAUSTED"
    assert error_message(full)[1:] == ("RESOURCE_EXHAUSTED", f"OSError: {full}")
    assert errors.code_name(KeyError("x")) == "INTERNAL"
    assert status_for(KeyError("secret"))[1] == "internal error; see the server log"


class _Status(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_one_set_of_retryable_codes() -> None:
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        assert errors.is_retryable(_Status(code))
        assert isinstance(errors.error_for(code.name, "down"), errors.UnavailableError)
    assert errors.is_retryable(ConnectionRefusedError()) and errors.is_retryable(TimeoutError())
    assert errors.is_retryable(errors.error_for("UNAVAILABLE", "down"))
    assert not errors.is_retryable(_Status(grpc.StatusCode.INVALID_ARGUMENT))
    assert not errors.is_retryable(errors.NotFoundError("gone"))
    assert not errors.is_retryable(ValueError("the record is malformed"))
