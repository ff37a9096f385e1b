"""greenprune: what structurally pruning a language model really buys you."""

from __future__ import annotations

__version__ = "0.1.0"
