"""An adversarial campaign against the three services, for the counts of hardening issue 16.

Starts a ResultsService (real DuckDB file), a PruningService and an EvalService in this process,
each on port 0 with a bearer token and its own temporary state, and sends them what the issue's
adversarial pass sent, by category (the issue's nine findings, plus random bytes and bad tokens):

1. client-chosen code: task folders outside the roots (``/etc``, ``..``, symlinks), task YAML
   with ``!function``, ``!!python/...``, ``class:``, includes leaving the root; planted under a
   task root (``GREENPRUNE_EVAL_TASK_ROOTS``); no marker file may ever be written.
2. the ResultsService stores anything: 1 MB and 35 MB strings, NUL bytes, inf/nan/-inf in every
   double of RecordEvalRun/RecordPruneRun/RecordProfileRun, extreme finite values; afterwards
   every read (each QueryView view, List*, ExportView csv/parquet, ``greenprune report``) answers.
3. spec bounds: every bounded field of PruneSpec/EvalSpec/ProfileSpec/RecoverySpec below and
   above its bound (from ``greenprune.core.limits``), type extremes, 1e308, nan.
4. lost work: a long results outage during a prune, with a restart of the pruning service
   during it, then exactly one record; a lost database, a rerun.
5. the app without the token: anonymous and wrong-token Streamlit sessions see no data.
6. Health.Watch streams SERVING on all three services.
7. clean errors: page tokens, model names, resource names, huge inputs (the error's details must
   stay short).
8. the experiment file check (``greenprune run --dry-run FILE``): alias bombs, deep nesting,
   binary files, unknown keys, unknown models and tasks, every file bound + 1.
9. a failure inside lm-eval names the task, the subject, the exception type and file:line.

Plus random bytes on every method and bad-token calls on every method (all UNAUTHENTICATED).

A bad outcome is: INTERNAL or UNKNOWN, no answer within the deadline, a traceback printed by
the CLI, a stored value that breaks a later read, a code-execution marker written, accepted input
that should have been refused (or a valid request refused), or error details longer than
``MAX_DETAILS`` characters. The summary gives, per category, requests tried / clean errors /
accepted / bad; the exit status is 1 when any bad outcome occurred, each listed with its request.

Requests are plain list entries (``HOSTILE_TASK_YAML``, ``TASK_FOLDER_PATHS``,
``TASK_SOURCE_UPLOADS``, ``BAD_PAGE_TOKENS``, ``BAD_NAMES``, ``experiment_files`` ...); methods
added to the protos are reached by the random-bytes and bad-token categories without changes.

The package: :mod:`.harness` (the services and the Campaign that sends and records),
:mod:`.verdicts` (expectations, verdicts, tallies), :mod:`.messages` (walking proto messages by
descriptor), :mod:`.task_folders` (the hostile task folders), one module per category
(:mod:`.client_code` 1, :mod:`.results_store` 2, :mod:`.spec_bounds` 3, :mod:`.lost_work` 4,
:mod:`.app_access` 5, :mod:`.health` 6, :mod:`.clean_errors` 7, :mod:`.file_check` 8,
:mod:`.library_failures` 9, :mod:`.random_bytes`, :mod:`.tokens`), :mod:`.campaign` (runs them
in order) and ``__main__`` (the command line).

Run: ``python -m bench.adversarial [--quick] [--only 2,7] [--seed 0] [--keep] [--home DIR]``
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
