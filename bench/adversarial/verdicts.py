"""What a request should get, what it got, and the tallies of a campaign.

A request expects to be refused, accepted, either, or refused UNAUTHENTICATED; :func:`judge`
turns its answer into clean (a clean error), accepted, or bad.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

REFUSE, ACCEPT, EITHER, UNAUTH = "refuse", "accept", "either", "unauthenticated"

CLEAN, ACCEPTED, BAD = "clean", "accepted", "bad"

CLEAN_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)

MAX_DETAILS = 1024
"""Error details longer than this echo the input (the issue asks for a short prefix)."""


@dataclass
class Tally:
    """Counts of one category."""

    tried: int = 0
    clean: int = 0
    accepted: int = 0
    bad: int = 0


@dataclass(frozen=True)
class Bad:
    """One bad outcome: its category, the request, what happened."""

    category: str
    request: str
    what: str


@dataclass
class Answer:
    """What one RPC returned."""

    code: grpc.StatusCode
    details: str
    response: bytes | None
    verdict: str


@dataclass
class Results:
    """The campaign's outcome."""

    tallies: dict[str, Tally]
    bads: list[Bad]
    notes: list[str]
    seconds: float
    home: Path

    @property
    def ok(self) -> bool:
        """Whether no bad outcome occurred."""
        return not self.bads

    def summary(self) -> dict[str, Any]:
        """The outcome as JSON: the tallies per category, the bad outcomes and the notes."""
        return {
            "ok": self.ok,
            "tallies": {key: asdict(tally) for key, tally in self.tallies.items()},
            "bads": [asdict(bad) for bad in self.bads],
            "notes": self.notes,
            "seconds": self.seconds,
        }


def judge(
    code: grpc.StatusCode, details: str, expect: str, streaming: bool, timeout: float
) -> tuple[str, str]:
    """The verdict on one answer: clean, accepted or bad (with what happened)."""
    short = details[:160].replace("\n", " ")
    if code == grpc.StatusCode.OK:
        if expect in (ACCEPT, EITHER):
            return ACCEPTED, ""
        if expect == UNAUTH:
            return BAD, "answered OK to a bad token"
        return BAD, "accepted input that should have been refused"
    if expect == UNAUTH:
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return CLEAN, ""
        return BAD, f"{code.name} instead of UNAUTHENTICATED: {short}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        if streaming and expect != REFUSE:
            return ACCEPTED, ""  # a stream on a live job runs into the deadline
        return BAD, f"no answer within the {timeout:.0f} s deadline"
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return BAD, f"{code.name}: {short}"
    lowered = details.lower()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and (
        "metadata" in lowered or "larger than max" in lowered
    ):
        return BAD, f"transport-level RESOURCE_EXHAUSTED: {short}"
    if code in CLEAN_CODES:
        if len(details) > MAX_DETAILS:
            return BAD, f"{code.name} whose details are {len(details)} characters: {short}..."
        if expect == ACCEPT:
            return BAD, f"a valid request was refused: {code.name}: {short}"
        return CLEAN, ""
    return BAD, f"{code.name}: {short}"
