"""greenprune from Python: prune, evaluate, plot.

A notebook-style script (cells marked ``# %%``): prune the reference model at two ratios,
evaluate each checkpoint on ``greenprune_facts`` with a small limit, read the results as a
pandas DataFrame and plot accuracy against energy with altair::

    greenprune reference-model build && greenprune up
    python examples/notebook.py [chart.html]

The client talks to the local stack (the GREENPRUNE_*_PORT variables move it) and sends
GREENPRUNE_TOKEN when it is set.
"""

# %%
from __future__ import annotations

import sys
from pathlib import Path

import altair as alt

from greenprune import Client

EXPERIMENT = "notebook"
client = Client()
print(client)

# %% Prune at two ratios; the same request_id gives the same job on a re-run.
prune_jobs = {
    ratio: client.prune(
        {
            "model": "reference:tiny-llama",
            "method": "magnitude_l2",
            "ratio": ratio,
            "prune_attention_heads": True,
            "prune_mlp": True,
            "calibration": {"source": "reference", "samples": 4, "sequence_length": 32},
        },
        request_id=f"{EXPERIMENT}-prune-{ratio}",
        experiment=EXPERIMENT,
    )
    for ratio in (0.0, 0.4)
}
for ratio, job in prune_jobs.items():
    stages = [update.stage for update in job.watch()]  # also .state, .progress, .job
    result = job.wait()
    print(f"pruned ratio={ratio}: {result.parameters_after} parameters, {result.checkpoint_id}")

# %% Evaluate each checkpoint on one local task, with a small limit and one metered repeat.
for ratio, job in prune_jobs.items():
    evaluation = client.evaluate(
        {
            "checkpoint_id": job.result.checkpoint_id,
            "tasks": ["greenprune_facts"],
            "limit": 16,
            "batch_size": 8,
            "repeats": 1,
            "warmup_batches": 0,
            "idle_seconds": 0,
            "device": "cpu",
        },
        request_id=f"{EXPERIMENT}-eval-{ratio}",
        experiment=EXPERIMENT,
    )
    task = evaluation.wait().tasks[0]
    metrics = {m.metric: round(m.value, 3) for m in task.metrics}
    print(f"evaluated ratio={ratio}: {task.task} {metrics}")

# %% The results as a DataFrame (one row per eval run), and the checkpoint on disk.
df = client.results("runs", experiment=EXPERIMENT)
print(df[["model", "ratio", "task", "accuracy", "net_joules"]].sort_values("ratio").to_string())
checkpoint = client.checkpoint(prune_jobs[0.4].result.checkpoint_id)
print(f"checkpoint {checkpoint.id}: {checkpoint.manifest['architecture']} at {checkpoint.path}")

# %% Accuracy against energy.
chart = (
    alt.Chart(df)
    .mark_point(filled=True, size=80)
    .encode(
        x=alt.X("net_joules:Q", title="net energy (J)"),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("ratio:O", title="pruning ratio"),
        tooltip=["ratio", "accuracy", "net_joules", "run_id"],
    )
    .properties(title=f"{EXPERIMENT}: accuracy vs energy")
)
out = Path(sys.argv[1] if len(sys.argv) > 1 else "accuracy_vs_energy.html")
chart.save(out)
print(f"chart: {out} ({len(df)} points)")
client.close()
