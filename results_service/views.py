"""The named read-only views of the results store, as SQL over the tables of ``migrations.py``.

Every view takes the three filter parameters ``$experiment``, ``$model`` and ``$task``; an empty
string does not filter, and a filter a view has no column for (task on ``layers``) is ignored.

Shared definitions used by several views:

* ``model`` is the base model: the eval run's own ``model`` field, else the ``spec.model`` of
  the prune run that wrote its checkpoint.
* ``ratio`` is the target ``spec.ratio`` and ``achieved_ratio`` the measured
  ``result.achieved_ratio`` of the prune run whose ``result.checkpoint_id`` equals the eval run's
  ``checkpoint_id`` (the latest such prune run when there are several). An eval run of a base
  model (empty ``checkpoint_id``) has ratio 0. An eval run of a checkpoint no prune run
  describes has ratio NULL.
* ``parameters_after`` / ``macs_after`` come from that prune run; for a base model evaluated
  directly, from the ``parameters_before`` / ``macs_before`` of any prune run of that model.
* Energy figures are the eval run's headline (``EnergyReport``): ``net_joules`` is the median
  over repeats and ``*_low`` / ``*_high`` the interval bounds; ``measurement_method`` is the
  method of the headline component.
* Metric kinds: ``accuracy`` for the metrics in ``ACCURACY_METRICS``, ``perplexity`` for those
  in ``PERPLEXITY_METRICS`` or containing "perplexity", ``other`` for the rest. The primary
  accuracy metric of a run is the first of ``ACCURACY_METRICS`` it reports (``acc``, else
  ``acc_norm``), preferring metrics of the run's own task; runs that report none (perplexity-only
  tasks) have no accuracy and are left out of ``pareto_front``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from greenprune.core import findings
from greenprune.core.findings import ACCURACY_METRICS, PERPLEXITY_METRICS


def _sql_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


_ACC = _sql_list(ACCURACY_METRICS)
_PPL = _sql_list(PERPLEXITY_METRICS)

_INTERVAL_COLUMNS = """
    {p}net_joules, {p}net_joules_low, {p}net_joules_high,
    {p}gross_joules, {p}gross_joules_low, {p}gross_joules_high,
    {p}joules_per_token, {p}joules_per_sample, {p}tokens,
    {p}tokens_per_second, {p}tokens_per_second_low, {p}tokens_per_second_high,
    {p}wall_seconds, {p}wall_seconds_low, {p}wall_seconds_high"""

_BASE = f"""
WITH checkpoint_info AS (
    SELECT checkpoint_id,
        arg_max(model, seq) AS model,
        arg_max(CASE WHEN recovered THEN method || '+lora' ELSE method END, seq)
            AS pruning_method,
        arg_max(
            COALESCE(
                NULLIF(result_method_family, ''),
                CASE WHEN target_ratio = 0 THEN 'baseline' ELSE 'width' END
            ),
            seq
        ) AS method_family,
        arg_max(result_bytes_in_memory, seq) AS bytes_in_memory,
        arg_max(target_ratio, seq) AS ratio,
        arg_max(achieved_ratio, seq) AS achieved_ratio,
        arg_max(parameters_before, seq) AS parameters_before,
        arg_max(parameters_after, seq) AS parameters_after,
        arg_max(macs_after, seq) AS macs_after
    FROM prune_runs
    WHERE checkpoint_id <> ''
    GROUP BY checkpoint_id
),
eval_facts AS (
    SELECT
        e.request_id AS run_id,
        e.seq,
        e.experiment,
        COALESCE(NULLIF(e.model, ''), c.model, '') AS model,
        NULLIF(e.checkpoint_id, '') AS checkpoint_id,
        CASE WHEN e.checkpoint_id = '' THEN 0.0::DOUBLE ELSE c.ratio END AS ratio,
        CASE WHEN e.checkpoint_id = '' THEN 0.0::DOUBLE ELSE c.achieved_ratio END
            AS achieved_ratio,
        CASE WHEN e.checkpoint_id = '' THEN 'none' ELSE c.pruning_method END AS pruning_method,
        CASE WHEN e.checkpoint_id = '' THEN 'baseline' ELSE c.method_family END AS method_family,
        c.bytes_in_memory,
        CASE WHEN e.checkpoint_id = '' THEN bm.parameters ELSE c.parameters_after END
            AS parameters_after,
        COALESCE(c.parameters_before, bm.parameters) AS parameters_before,
        CASE WHEN e.checkpoint_id = '' THEN bm.macs ELSE c.macs_after END AS macs_after,
        e.task,
        e.samples,
        e.num_fewshot,
        e.sample_limit,
        e.has_energy,
        {_INTERVAL_COLUMNS.format(p="e.")},
        e.peak_rss_bytes,
        e.peak_cuda_bytes,
        e.device_name AS device,
        e.hardware,
        e.headline_component,
        hc.method AS measurement_method,
        e.estimated,
        e.gpu_shared,
        e.repeats,
        e.create_time AS recorded_at,
        e.job_name
    FROM eval_runs e
    LEFT JOIN checkpoint_info c ON c.checkpoint_id = e.checkpoint_id
    LEFT JOIN models bm ON bm.model = e.model
    LEFT JOIN energy_components hc
        ON hc.run_kind = 'eval' AND hc.run_id = e.request_id
        AND hc.component = e.headline_component
),
runs AS (
    SELECT * FROM eval_facts
    WHERE ($experiment = '' OR experiment = $experiment)
        AND ($model = '' OR model = $model)
        AND ($task = '' OR task = $task)
),
metric_facts AS (
    SELECT m.run_id, m.task AS metric_task, m.metric, m.value, m.stderr, m.samples,
        r.task AS run_task,
        CASE
            WHEN list_contains({_ACC}, m.metric) THEN 'accuracy'
            WHEN list_contains({_PPL}, m.metric) OR m.metric LIKE '%perplexity%'
                THEN 'perplexity'
            ELSE 'other'
        END AS metric_kind
    FROM metrics m
    JOIN runs r ON r.run_id = m.run_id
),
primary_accuracy AS (
    SELECT run_id, metric, value, stderr, samples
    FROM metric_facts
    WHERE metric_kind = 'accuracy'
    QUALIFY row_number() OVER (
        PARTITION BY run_id
        ORDER BY list_position({_ACC}, metric), metric_task <> run_task, metric_task
    ) = 1
),
primary_perplexity AS (
    SELECT run_id, metric, value
    FROM metric_facts
    WHERE metric_kind = 'perplexity'
    QUALIFY row_number() OVER (
        PARTITION BY run_id
        ORDER BY list_position({_PPL}, metric) NULLS LAST, metric_task <> run_task,
            metric, metric_task
    ) = 1
)
"""

_RUNS = f"""{_BASE}
SELECT
    r.run_id, r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio,
    r.pruning_method, r.method_family, r.bytes_in_memory, r.parameters_after, r.macs_after,
    r.task,
    r.parameters_before,
    a.metric, a.value AS accuracy, a.stderr AS accuracy_stderr,
    p.metric AS perplexity_metric, p.value AS perplexity,
    r.samples, r.num_fewshot, r.sample_limit,
    {_INTERVAL_COLUMNS.format(p="r.")},
    r.peak_rss_bytes, r.peak_cuda_bytes, r.device, r.hardware, r.headline_component,
    r.measurement_method, r.estimated, r.gpu_shared, r.repeats, r.recorded_at, r.job_name
FROM runs r
LEFT JOIN primary_accuracy a ON a.run_id = r.run_id
LEFT JOIN primary_perplexity p ON p.run_id = r.run_id
ORDER BY r.experiment, r.model, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST, r.task, r.seq
"""

_ACCURACY_VS_SPARSITY = f"""{_BASE}
SELECT
    r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio, r.parameters_after,
    m.metric_task AS task, m.metric, m.value AS accuracy, m.stderr AS accuracy_stderr,
    m.samples, r.run_id
FROM runs r
JOIN metric_facts m ON m.run_id = r.run_id
WHERE m.metric_kind = 'accuracy'
ORDER BY r.experiment, r.model, task, m.metric, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST,
    r.seq
"""

_ENERGY_VS_SPARSITY = f"""{_BASE}
SELECT
    r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio, r.parameters_after,
    r.macs_after, r.task,
    {_INTERVAL_COLUMNS.format(p="r.")},
    r.samples, r.peak_rss_bytes, r.peak_cuda_bytes, r.device, r.hardware,
    r.headline_component, r.measurement_method, r.estimated, r.gpu_shared, r.repeats, r.run_id
FROM runs r
WHERE r.has_energy
ORDER BY r.experiment, r.model, r.task, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST, r.seq
"""

_PARETO_FRONT = f"""{_BASE},
per_task AS (
    SELECT r.experiment, r.model, r.checkpoint_id, r.task,
        any_value(r.ratio) AS ratio,
        any_value(r.achieved_ratio) AS achieved_ratio,
        any_value(r.parameters_after) AS parameters_after,
        any_value(r.macs_after) AS macs_after,
        avg(a.value) AS accuracy,
        avg(r.net_joules) AS net_joules,
        avg(r.net_joules_low) AS net_joules_low,
        avg(r.net_joules_high) AS net_joules_high,
        bool_or(r.estimated) AS estimated
    FROM runs r
    JOIN primary_accuracy a ON a.run_id = r.run_id
    WHERE r.has_energy
    GROUP BY r.experiment, r.model, r.checkpoint_id, r.task
),
points AS (
    SELECT experiment, model, checkpoint_id,
        any_value(ratio) AS ratio,
        any_value(achieved_ratio) AS achieved_ratio,
        any_value(parameters_after) AS parameters_after,
        any_value(macs_after) AS macs_after,
        count(*) AS tasks,
        string_agg(task, ',' ORDER BY task) AS task_set,
        avg(accuracy) AS mean_accuracy,
        sum(net_joules) AS net_joules,
        sum(net_joules_low) AS net_joules_low,
        sum(net_joules_high) AS net_joules_high,
        bool_or(estimated) AS estimated
    FROM per_task
    GROUP BY experiment, model, checkpoint_id
)
SELECT p.experiment, p.model, p.checkpoint_id, p.ratio, p.achieved_ratio, p.parameters_after,
    p.macs_after, p.tasks, p.task_set, p.mean_accuracy, p.net_joules, p.net_joules_low,
    p.net_joules_high, p.estimated
FROM points p
ORDER BY p.experiment, p.task_set, p.net_joules, p.mean_accuracy DESC
"""


def _pareto_front(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    points = inputs["points"]
    on_front = findings.pareto_mask(
        points, x="net_joules", y="mean_accuracy", groups=("experiment", "task_set")
    )
    return points[on_front].reset_index(drop=True)


_PROFILE_POINTS = """
WITH checkpoint_info AS (
    SELECT checkpoint_id,
        arg_max(
            COALESCE(
                NULLIF(result_method_family, ''),
                CASE WHEN target_ratio = 0 THEN 'baseline' ELSE 'width' END
            ),
            seq
        ) AS method_family,
        arg_max(target_ratio, seq) AS ratio,
        arg_max(achieved_ratio, seq) AS achieved_ratio,
        arg_max(parameters_before, seq) AS parameters_before,
        arg_max(parameters_after, seq) AS parameters_after
    FROM prune_runs
    WHERE checkpoint_id <> ''
    GROUP BY checkpoint_id
)
SELECT p.experiment, p.model, p.request_id AS run_id, p.checkpoint_id,
    CASE WHEN p.checkpoint_id IN ('', p.model) THEN 0.0::DOUBLE ELSE c.ratio END AS ratio,
    CASE WHEN p.checkpoint_id IN ('', p.model) THEN 0.0::DOUBLE ELSE c.achieved_ratio END
        AS achieved_ratio,
    COALESCE(c.parameters_before, m.parameters) AS parameters_before,
    CASE WHEN p.checkpoint_id IN ('', p.model) THEN m.parameters ELSE c.parameters_after END
        AS parameters_after,
    COALESCE(c.method_family, 'baseline') AS method_family,
    p.phase, p.batch_size, p.round, p.position, p.net_joules, p.gross_joules, p.wall_seconds,
    p.tokens, p.iterations, r.estimated, r.energy_method
FROM profile_points p
JOIN profile_runs r ON r.request_id = p.request_id
LEFT JOIN checkpoint_info c ON c.checkpoint_id = p.checkpoint_id
LEFT JOIN models m ON m.model = p.model
WHERE ($experiment = '' OR p.experiment = $experiment)
    AND ($model = '' OR p.model = $model)
ORDER BY p.experiment, p.model, p.request_id, p.round, p.position
"""

_EVAL_METRICS = f"""{_BASE}
SELECT r.run_id, r.seq, r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio,
    r.method_family, r.parameters_before, r.parameters_after, r.task, m.task AS metric_task,
    m.metric, m.value
FROM runs r
JOIN metrics m ON m.run_id = r.run_id
ORDER BY r.seq, m.position
"""

_ITEM_SCORES = f"""{_BASE}
SELECT i.run_id, i.task, i.metric, i.doc_id, i.value
FROM item_scores i
JOIN runs r ON r.run_id = i.run_id
"""


def _profile(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return findings.profile_table(inputs["points"])


def _findings(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return findings.findings_table(inputs["points"], inputs["metrics"], inputs["items"])


_PRUNE_COSTS = """
SELECT checkpoint_id, net_joules AS pruning_joules, recovery_net_joules AS recovery_joules,
    COALESCE(recovered, false) AS recovered
FROM prune_runs
WHERE checkpoint_id <> ''
    AND ($experiment = '' OR experiment = $experiment)
    AND ($model = '' OR model = $model)
ORDER BY seq
"""


def _method_comparison(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return findings.method_comparison_table(inputs["points"], inputs["metrics"], inputs["items"])


def _payback(inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return findings.payback_table(inputs["points"], inputs["costs"])


@dataclass(frozen=True)
class ComputedView:
    """A view computed in Python (``greenprune.core.findings``) from the rows of SQL queries.

    Attributes:
        inputs: The SQL of each input frame, by name; filters as the SQL views.
        compute: Turns the input frames into the view's rows.
    """

    inputs: Mapping[str, str]
    compute: Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]


_TASK_BREAKDOWN = f"""{_BASE},
per_metric AS (
    SELECT r.experiment, r.model, r.checkpoint_id, m.metric_task AS task, m.metric,
        any_value(m.metric_kind) AS metric_kind,
        any_value(r.ratio) AS ratio,
        any_value(r.achieved_ratio) AS achieved_ratio,
        any_value(r.parameters_after) AS parameters_after,
        avg(m.value) AS value,
        avg(r.net_joules) AS net_joules
    FROM runs r
    JOIN metric_facts m ON m.run_id = r.run_id
    GROUP BY r.experiment, r.model, r.checkpoint_id, m.metric_task, m.metric
),
baseline AS (
    SELECT experiment, model, task, metric,
        avg(value) AS baseline_value,
        avg(net_joules) AS baseline_net_joules
    FROM per_metric
    WHERE ratio = 0
    GROUP BY experiment, model, task, metric
)
SELECT pm.experiment, pm.model, pm.checkpoint_id, pm.ratio, pm.achieved_ratio,
    pm.parameters_after, pm.task, pm.metric, pm.metric_kind,
    pm.value, b.baseline_value,
    pm.value - b.baseline_value AS delta_value,
    (pm.value - b.baseline_value) / NULLIF(b.baseline_value, 0) AS relative_delta_value,
    pm.net_joules, b.baseline_net_joules,
    pm.net_joules - b.baseline_net_joules AS delta_net_joules,
    (pm.net_joules - b.baseline_net_joules) / NULLIF(b.baseline_net_joules, 0)
        AS relative_delta_net_joules
FROM per_metric pm
LEFT JOIN baseline b
    ON b.experiment = pm.experiment AND b.model = pm.model AND b.task = pm.task
    AND b.metric = pm.metric
ORDER BY pm.experiment, pm.model, pm.task, pm.metric, pm.ratio NULLS LAST,
    pm.checkpoint_id NULLS FIRST
"""

_EXPERIMENTS = f"""{_BASE},
activity AS (
    SELECT experiment, model, NULLIF(checkpoint_id, '') AS checkpoint_id, NULL::VARCHAR AS task,
        'prune' AS kind, create_time
    FROM prune_runs
    WHERE ($experiment = '' OR experiment = $experiment)
        AND ($model = '' OR model = $model)
        AND $task = ''
    UNION ALL
    SELECT experiment, model, checkpoint_id, task, 'eval' AS kind, recorded_at AS create_time
    FROM runs
)
SELECT experiment,
    count(DISTINCT model) AS models,
    string_agg(DISTINCT model, ', ' ORDER BY model) AS model_names,
    count(DISTINCT checkpoint_id) AS checkpoints,
    count(*) FILTER (WHERE kind = 'prune') AS prune_runs,
    count(*) FILTER (WHERE kind = 'eval') AS eval_runs,
    count(DISTINCT task) AS tasks,
    string_agg(DISTINCT task, ', ' ORDER BY task) AS task_names,
    min(create_time) AS first_recorded,
    max(create_time) AS last_updated
FROM activity
GROUP BY experiment
ORDER BY last_updated DESC, experiment
"""

_ENERGY_COMPONENTS = f"""{_BASE},
owners AS (
    SELECT 'eval' AS run_kind, run_id, experiment, model, checkpoint_id, ratio, task,
        headline_component
    FROM runs
    UNION ALL
    SELECT 'prune' AS run_kind, request_id, experiment, model, NULLIF(checkpoint_id, ''),
        target_ratio, NULL::VARCHAR, headline_component
    FROM prune_runs
    WHERE ($experiment = '' OR experiment = $experiment)
        AND ($model = '' OR model = $model)
        AND $task = ''
)
SELECT o.run_id, o.run_kind, o.experiment, o.model, o.checkpoint_id, o.ratio, o.task,
    c.component, c.method AS measurement_method, c.estimated,
    c.component = o.headline_component AS headline,
    c.net_joules, c.net_joules_low, c.net_joules_high,
    c.gross_joules, c.gross_joules_low, c.gross_joules_high,
    c.idle_watts
FROM energy_components c
JOIN owners o ON o.run_kind = c.run_kind AND o.run_id = c.run_id
ORDER BY o.experiment, o.model, o.run_kind, o.ratio NULLS LAST, o.task, o.run_id, c.position
"""

_LAYERS = """
SELECT p.experiment, p.model, NULLIF(p.checkpoint_id, '') AS checkpoint_id,
    p.target_ratio AS ratio, p.achieved_ratio, l.layer_index AS layer, l.attention_heads,
    l.key_value_heads, l.intermediate_size, l.kept, p.request_id AS run_id
FROM layer_shapes l
JOIN prune_runs p ON p.request_id = l.prune_run_id
WHERE ($experiment = '' OR p.experiment = $experiment)
    AND ($model = '' OR p.model = $model)
ORDER BY p.experiment, p.model, p.target_ratio, p.seq, l.layer_index
"""

_PRUNE_RUNS = """
SELECT request_id AS run_id, experiment, model, NULLIF(checkpoint_id, '') AS checkpoint_id,
    method AS pruning_method, target_ratio AS ratio, achieved_ratio,
    COALESCE(
        NULLIF(result_method_family, ''),
        CASE WHEN target_ratio = 0 THEN 'baseline' ELSE 'width' END
    ) AS method_family,
    result_bytes_in_memory AS bytes_in_memory, result_layers_after AS layers_after,
    parameters_before, parameters_after, prunable_parameters_before, prunable_parameters_after,
    macs_before, macs_after, bytes_on_disk, prune_wall_seconds AS wall_seconds, uniform,
    architecture, prune_attention_heads, prune_mlp, prune_hidden, keep_first_layers,
    keep_last_layers, round_to, calibration_samples, seed,
    net_joules AS energy_net_joules, net_joules_low AS energy_net_joules_low,
    net_joules_high AS energy_net_joules_high, estimated AS energy_estimated,
    content_hash, create_time AS recorded_at, job_name,
    COALESCE(recovered, false) AS recovered, recovery_steps, recovery_net_joules,
    recovery_final_loss, recovery_parent_content_hash
FROM prune_runs
WHERE ($experiment = '' OR experiment = $experiment)
    AND ($model = '' OR model = $model)
ORDER BY experiment, model, target_ratio, seq
"""

COMPUTED_VIEWS: Mapping[str, ComputedView] = {
    "pareto_front": ComputedView({"points": _PARETO_FRONT}, _pareto_front),
    "profile": ComputedView({"points": _PROFILE_POINTS}, _profile),
    "findings": ComputedView(
        {"points": _PROFILE_POINTS, "metrics": _EVAL_METRICS, "items": _ITEM_SCORES}, _findings
    ),
    "payback": ComputedView({"points": _PROFILE_POINTS, "costs": _PRUNE_COSTS}, _payback),
    "method_comparison": ComputedView(
        {"points": _PROFILE_POINTS, "metrics": _EVAL_METRICS, "items": _ITEM_SCORES},
        _method_comparison,
    ),
}
"""The views computed in Python from SQL inputs, by name."""

VIEW_SQL: Mapping[str, str] = {
    "runs": _RUNS,
    "accuracy_vs_sparsity": _ACCURACY_VS_SPARSITY,
    "energy_vs_sparsity": _ENERGY_VS_SPARSITY,
    "task_breakdown": _TASK_BREAKDOWN,
    "experiments": _EXPERIMENTS,
    "energy_components": _ENERGY_COMPONENTS,
    "layers": _LAYERS,
    "prune_runs": _PRUNE_RUNS,
}
"""The SQL of every SQL view, by name. Each row of each view is described in VIEW_DOCS."""

VIEW_NAMES: tuple[str, ...] = (*VIEW_SQL, *COMPUTED_VIEWS)
"""Every view, SQL or computed."""

VIEW_DOCS: Mapping[str, str] = {
    "runs": "One row per eval run: model, ratio, task, primary accuracy metric and value "
    "(NULL for perplexity-only tasks), primary perplexity, and the headline energy and speed.",
    "accuracy_vs_sparsity": "One row per eval run and accuracy metric (acc, acc_norm): "
    "accuracy and its stderr against ratio. Perplexity metrics are not included.",
    "energy_vs_sparsity": "One row per eval run that has an energy report: net and gross "
    "joules, J/token, J/sample, tokens/s and wall time with their intervals, against ratio.",
    "pareto_front": "Per experiment and set of tasks, the checkpoints no other checkpoint beats "
    "on both mean primary accuracy over tasks and headline net energy summed over those tasks. "
    "Runs of the same checkpoint and task are averaged first; net_joules_low/high are sums "
    "of the per-task bounds.",
    "task_breakdown": "One row per checkpoint, task and metric (accuracy and perplexity): the "
    "value and net energy against the ratio-0 runs of the same model and experiment "
    "(averaged when there are several), as differences and relative differences.",
    "experiments": "One row per experiment: models, checkpoints, prune and eval runs, tasks, "
    "first and last record time.",
    "energy_components": "One row per energy component (cpu, gpu, ram) of every eval and prune "
    "run, with its measurement method and whether it is the headline component.",
    "layers": "One row per decoder layer of every prune run's checkpoint: heads, key/value "
    "heads, MLP width and whether the layer was kept out of pruning.",
    "prune_runs": "One row per prune run: method, target and achieved ratio, parameters, "
    "MACs and size before and after, the energy of the pruning itself, and of the LoRA "
    "recovery when the run had one (recovered, recovery_steps, recovery_net_joules).",
    "profile": "One row per experiment, model, checkpoint, phase (prefill, decode) and batch "
    "size of the energy profiles: J/token (net joules over tokens), tokens/s and latency per "
    "batch, each a median over rounds with its interval; the target ratio (share of prunable "
    "parameters) and the share of all parameters removed; above_idle says whether the net "
    "energy's interval lies above 0.",
    "findings": "Every difference against the baseline (ratio 0 of the same model and "
    "experiment) with its paired interval: kind 'energy' per profile phase and batch size "
    "(J/token, paired by round, relative change), kind 'accuracy' per task (the headline "
    "metric, paired by document, difference in points). measurable is true when the interval "
    "excludes 0; text is the ready description ('no measurable change (...)', 'no paired "
    "data' for runs without per-document scores).",
    "payback": "One row per compressed checkpoint with an energy profile: the pruning's and "
    "the recovery fine-tuning's net joules, the J/token saved against the baseline (paired "
    "change in the prefill phase at the largest profiled batch size) and the inference tokens "
    "after which the saving has repaid the cost, with its interval; 'never' when the saving is "
    "not measurably above zero.",
    "method_comparison": "One row per pair of compression methods of equal size (the same "
    "target ratio of a model: width vs depth vs width+int8) and per profile phase and batch "
    "size (J/token, paired by round) or per task (accuracy, paired by document): b against a, "
    "with its 95% interval and 'no measurable change' when it contains 0.",
}
"""A sentence on each view, for the export and the app."""


def view_parameters(view: str, experiment: str, model: str, task: str) -> dict[str, str]:
    """Returns the named SQL parameters the view's SQL uses.

    Args:
        view: A key of ``VIEW_SQL``.
        experiment: The experiment filter, empty for none.
        model: The model filter, empty for none.
        task: The task filter, empty for none.
    """
    sql = VIEW_SQL[view] if view in VIEW_SQL else " ".join(COMPUTED_VIEWS[view].inputs.values())
    return sql_parameters(sql, experiment, model, task)


def sql_parameters(sql: str, experiment: str, model: str, task: str) -> dict[str, str]:
    """Returns the named parameters one SQL statement uses, of the three filters."""
    values = {"experiment": experiment, "model": model, "task": task}
    return {name: value for name, value in values.items() if f"${name}" in sql}
