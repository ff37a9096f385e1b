"""The runtime every greenprune gRPC server shares: bootstrap, errors, auth, jobs."""

from __future__ import annotations
