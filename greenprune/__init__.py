"""greenprune: what structurally pruning a language model really buys you."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Client"]


def __getattr__(name: str) -> object:
    # Lazy, so that importing a greenprune submodule does not import the client's stack.
    if name == "Client":
        from greenprune.client.sdk import Client

        return Client
    raise AttributeError(f"module 'greenprune' has no attribute {name!r}")
