"""Evaluation service: runs lm-eval tasks on checkpoints under energy metering."""

from __future__ import annotations
