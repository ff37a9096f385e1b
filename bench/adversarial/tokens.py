"""Bad tokens on every method of the three services: each UNAUTHENTICATED."""

from __future__ import annotations

from bench.adversarial.harness import Campaign
from bench.adversarial.verdicts import UNAUTH

BAD_AUTHORIZATION: list[tuple[str, str | None]] = [
    ("no token", None),
    ("empty header", ""),
    ("'Bearer'", "Bearer"),
    ("'Bearer '", "Bearer "),
    ("wrong token", "Bearer wrong"),
    ("token + x", "Bearer {token}x"),
    ("token minus last char", "Bearer {token_short}"),
    ("token without scheme", "{token}"),
    ("Basic scheme", "Basic {token}"),
    ("4,000 characters", "Bearer " + "a" * 4000),
]
"""authorization metadata that must be UNAUTHENTICATED on every method."""


def category_tokens(c: Campaign) -> None:
    """Every method of every service with each bad authorization header."""
    entries = BAD_AUTHORIZATION if not c.quick else BAD_AUTHORIZATION[:4]
    for kind in c.servers:
        for method in c.services[kind].methods:
            for label, value in entries:
                metadata = (
                    None
                    if value is None
                    else [("authorization", value.format(token=c.token, token_short=c.token[:-1]))]
                )
                c.call(
                    "token",
                    label,
                    kind,
                    method.name,
                    b"",
                    UNAUTH,
                    timeout=10,
                    metadata=metadata,
                    channel=c.bare[kind],
                )
