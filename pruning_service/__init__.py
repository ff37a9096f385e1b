"""The PruningService: structural pruning of causal LMs into greenprune checkpoints."""

from __future__ import annotations
