"""Category 3, spec bounds: every bounded field below and above its bound.

Every bounded field of PruneSpec, EvalSpec, ProfileSpec and RecoverySpec (bounds from
``greenprune.core.limits``), type extremes, 1e308, nan.
"""

from __future__ import annotations

from typing import Any

from bench.adversarial.harness import PROFILE_CHECKPOINT, REFERENCE, Campaign, eval_spec
from bench.adversarial.messages import field_at, out_of_bounds, set_dotted
from bench.adversarial.verdicts import ACCEPT, REFUSE


def category_bounds(c: Campaign) -> None:
    """Every bounded field below and above its bound, and type extremes; all refused."""
    from greenprune.api.eval.v1 import eval_pb2
    from greenprune.api.pruning.v1 import pruning_pb2
    from greenprune.core import limits

    prune_base = pruning_pb2.PruneSpec(
        model=REFERENCE, method=pruning_pb2.PRUNING_METHOD_MAGNITUDE_L1, ratio=0.2, prune_mlp=True
    )
    recovery_base = pruning_pb2.PruneSpec()
    recovery_base.CopyFrom(prune_base)
    recovery_base.recovery.CopyFrom(
        pruning_pb2.RecoverySpec(
            rank=8, alpha=16, steps=1, learning_rate=1e-3, batch_size=1, sequence_length=16
        )
    )
    eval_base = eval_spec()
    profile_base = eval_pb2.EvalSpec(
        device="cpu", profile=eval_pb2.ProfileSpec(checkpoint_ids=[PROFILE_CHECKPOINT])
    )
    tables: list[tuple[str, Any, Any, str, str, str]] = [
        ("PruneSpec", limits.PRUNE_SPEC, prune_base, "pruning", "CreatePruneJob", ""),
        (
            "RecoverySpec",
            limits.RECOVERY_SPEC,
            recovery_base,
            "pruning",
            "CreatePruneJob",
            "recovery.",
        ),
        ("EvalSpec", limits.EVAL_SPEC, eval_base, "eval", "CreateEvalJob", ""),
        ("EvalSpec of a profile", limits.EVAL_SPEC, profile_base, "eval", "CreateEvalJob", ""),
        ("ProfileSpec", limits.PROFILE_SPEC, profile_base, "eval", "CreateEvalJob", ""),
    ]
    validate_only = {
        "pruning": c.has("pruning", "CreatePruneJob", "validate_only"),
        "eval": c.has("eval", "CreateEvalJob", "validate_only"),
    }
    counter = iter(range(10**6))
    skipped = 0

    def send(label: str, service: str, method: str, spec: Any, expect: str, hint: str) -> None:
        for only in (False, True) if validate_only[service] else (False,):
            request = c.request(service, method, request_id=f"bounds-{next(counter)}", spec=spec)
            if only:
                request.validate_only = True
            since = len(c.created)
            c.call(
                "3",
                label + (" (validate_only)" if only else ""),
                service,
                method,
                request,
                expect,
                field_hint=hint,
            )
            c.cancel_created(since)

    for title, table, base, service, method, prefix in tables:
        send(f"{title} control (in bounds)", service, method, base, ACCEPT, "")
        spec_class = type(base)
        for key, limit in table.items():
            path = prefix + key
            fd = field_at(spec_class, path)
            values, zero = out_of_bounds(limit, fd)
            skipped += zero
            for label, value in values:
                spec = spec_class()
                spec.CopyFrom(base)
                set_dotted(spec, path, value)
                send(
                    f"{title} {path}={label} ({value!r})",
                    service,
                    method,
                    spec,
                    REFUSE,
                    path.split(".")[-1],
                )
    for label, value in (
        ("0", 0),
        ("-1", -1),
        ("high+1", int(limits.PROFILE_BATCH_SIZE.high) + 1),
        ("int32 max", 2**31 - 1),
    ):
        spec = eval_pb2.EvalSpec()
        spec.CopyFrom(profile_base)
        spec.profile.batch_sizes.append(value)
        send(
            f"ProfileSpec batch_sizes[0]={label}",
            "eval",
            "CreateEvalJob",
            spec,
            REFUSE,
            "batch_sizes",
        )
    if skipped:
        c.note(
            f"[3] {skipped} low-1 values skipped: they are 0, which proto3 reads as unset "
            "(the service fills the default)"
        )
