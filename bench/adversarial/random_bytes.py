"""Random bytes on every method of the three services."""

from __future__ import annotations

import random

from bench.adversarial.harness import Campaign
from bench.adversarial.results_store import sample_records
from bench.adversarial.verdicts import EITHER


def category_bytes(c: Campaign) -> None:
    """Random and mutated payloads on every method of every service."""
    per_service = 15 if c.quick else 100
    samples = _valid_samples()
    for kind in c.servers:
        methods = list(c.services[kind].methods)
        for index in range(per_service):
            method = methods[index % len(methods)]  # every method, in turn
            sample = samples.get(method.name)
            if sample and not method.name.startswith("Create") and c.rng.random() < 0.5:
                payload, how = _mutate(c.rng, sample), "mutated"
            else:
                payload, how = c.rng.randbytes(c.rng.randint(0, 256)), "random"
            since = len(c.created)
            c.call(
                "bytes",
                f"{how} {len(payload)} bytes {payload[:16].hex()}...",
                kind,
                method.name,
                payload,
                EITHER,
                timeout=3 if method.server_streaming else 20,
            )
            c.cancel_created(since)


def _valid_samples() -> dict[str, bytes]:
    from greenprune.api.results.v1 import results_pb2 as pb

    prunes, evals, profiles = sample_records()
    return {
        "RecordEvalRun": pb.RecordEvalRunRequest(run=evals[0]).SerializeToString(),
        "RecordPruneRun": pb.RecordPruneRunRequest(run=prunes[0]).SerializeToString(),
        "RecordProfileRun": pb.RecordProfileRunRequest(run=profiles[0]).SerializeToString(),
        "BatchRecordEvalRuns": pb.BatchRecordEvalRunsRequest(runs=evals[:3]).SerializeToString(),
        "QueryView": pb.QueryViewRequest(view=pb.VIEW_RUNS).SerializeToString(),
        "ExportView": pb.ExportViewRequest(view=pb.VIEW_RUNS, format=1).SerializeToString(),
        "ListEvalRuns": pb.ListEvalRunsRequest(page_size=5, page_token="5").SerializeToString(),
        "ListPruneRuns": pb.ListPruneRunsRequest(page_size=5, page_token="5").SerializeToString(),
    }


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.5 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif choice < 0.75:
            buffer[rng.randint(0, len(buffer)) : rng.randint(0, len(buffer))] = b""
        else:
            position = rng.randint(0, len(buffer))
            buffer[position:position] = rng.randbytes(rng.randint(1, 8))
    return bytes(buffer)
