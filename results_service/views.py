"""The named read-only views of the results store, all starting from its configurations.

A *configuration* is one checkpoint of one model in one experiment, or the base model evaluated
or profiled directly (``checkpoint_id`` NULL). The ``configurations`` SQL below, written once,
gives each its ratio (the target share of prunable parameters removed or, by weight sparsity,
zeroed: the structure's share, then the sparsity's of what is left), both parameter shares
(``achieved_ratio`` of prunable parameters removed or zeroed, ``zeroed_share`` the zeroed part
of it; ``parameters_removed`` of all parameters, which zeroed weights are not), the kernel path
predicted on a CPU and the share of the baseline's MACs it skips, method family,
lineage (``recovered``, ``parent_checkpoint_id``) and whether it is the **baseline**; the
``evaluations`` SQL gives each eval run its configuration and each task its **headline
metric**. Every SQL view selects from them, and every computed view (``comparisons.py``,
``fronts.py``, ``profiles.py``) starts from their rows.

Rules decided here, once:

* **Baseline**: the uncompressed configuration of a model in an experiment (method family
  ``baseline``: nothing removed, nothing quantized, not fine-tuned), one per model: the one
  written by the latest prune run, else the base model evaluated directly. An int8 or int4 copy
  of the unpruned model has ratio 0 and is never the baseline.
* **Method family**: the prune run's ``result.method_family``; for runs recorded before it
  existed, ``baseline`` at ratio 0, else ``width``, with ``+lora`` when recovered.
* **Headline metric** of a task of a model in an experiment: among the metrics its runs report
  for the task itself, the first of ``findings.ACCURACY_METRICS``, else of
  ``findings.PERPLEXITY_METRICS``, else any perplexity, else the first reported.

Every view takes the three filter parameters ``$experiment``, ``$model`` and ``$task``; an empty
string does not filter, and a filter a view has no column for (task on ``layers``) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from greenprune.core.findings import ACCURACY_METRICS, BASELINE_FAMILY, PERPLEXITY_METRICS
from greenprune.core.limits import record_number_bound
from results_service import comparisons, fronts, profiles
from results_service.findings_view import findings_table


def _sql_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


_ACC = _sql_list(ACCURACY_METRICS)
_PPL = _sql_list(PERPLEXITY_METRICS)
_KIND = f"""CASE
            WHEN list_contains({_ACC}, m.metric) THEN 'accuracy'
            WHEN list_contains({_PPL}, m.metric) OR m.metric LIKE '%perplexity%'
                THEN 'perplexity'
            ELSE 'other'
        END"""
_RANK = f"""CASE
            WHEN list_contains({_ACC}, m.metric) THEN list_position({_ACC}, m.metric)
            WHEN list_contains({_PPL}, m.metric) THEN 100 + list_position({_PPL}, m.metric)
            WHEN m.metric LIKE '%perplexity%' THEN 200
            ELSE 300
        END"""

_ENERGY = """
    {p}net_joules, {p}net_joules_low, {p}net_joules_high,
    {p}gross_joules, {p}gross_joules_low, {p}gross_joules_high,
    {p}joules_per_token, {p}joules_per_sample, {p}tokens,
    {p}tokens_per_second, {p}tokens_per_second_low, {p}tokens_per_second_high,
    {p}wall_seconds, {p}wall_seconds_low, {p}wall_seconds_high"""

_CONFIGURATION = """
    {p}experiment, {p}model, {p}checkpoint_id, {p}ratio, {p}achieved_ratio,
    {p}parameters_before, {p}parameters_after, {p}parameters_removed, {p}macs_after,
    {p}bytes_in_memory, {p}method_family, {p}pruning_method, {p}recovered,
    {p}parent_checkpoint_id, {p}is_baseline, {p}zeroed_share, {p}cpu_kernel,
    {p}cpu_macs_skipped_share, {p}pruning_seed, {p}draw_of, {p}draws"""

_BASE = f"""
WITH prune_facts AS (
    SELECT *,
        spec_recovery_rank IS NOT NULL AS recovered,
        COALESCE(
            NULLIF(result_method_family, ''),
            CASE WHEN spec_ratio = 0 THEN '{BASELINE_FAMILY}' ELSE 'width' END
                || CASE WHEN spec_recovery_rank IS NOT NULL THEN '+lora' ELSE '' END
        ) AS method_family,
        spec_method || CASE WHEN spec_recovery_rank IS NOT NULL THEN '+lora' ELSE '' END
            AS pruning_method,
        md5(CAST(struct_pack(*COLUMNS(lambda c: c LIKE 'spec\\_%' ESCAPE '\\'
            AND c NOT IN ('spec_seed', 'spec_json'))) AS VARCHAR)) AS draw_point
    FROM prune_runs
),
checkpoint_runs AS (
    SELECT result_checkpoint_id AS checkpoint_id, spec_model AS model,
        CASE WHEN COALESCE(spec_sparsity_ratio, 0) = 0 THEN spec_ratio
            ELSE 1 - (1 - spec_ratio) * (1 - spec_sparsity_ratio) END AS ratio,
        result_achieved_ratio + COALESCE(result_zeroed_share, 0) AS achieved_ratio,
        COALESCE(result_zeroed_share, 0) AS zeroed_share,
        NULLIF(result_cpu_kernel_name, '') AS cpu_kernel,
        result_cpu_kernel_macs_skipped_share AS cpu_macs_skipped_share,
        result_parameters_before AS parameters_before,
        result_parameters_after AS parameters_after, result_macs_after AS macs_after,
        result_bytes_in_memory AS bytes_in_memory, method_family, pruning_method, recovered,
        result_content_hash AS content_hash,
        NULLIF(result_recovery_parent_content_hash, '') AS parent_content_hash, seq,
        experiment AS pruned_in, spec_seed AS pruning_seed, draw_point
    FROM prune_facts
    WHERE result_checkpoint_id <> ''
    QUALIFY row_number() OVER (PARTITION BY result_checkpoint_id ORDER BY seq DESC) = 1
),
point_draws AS (
    SELECT pruned_in, draw_point, count(DISTINCT pruning_seed) AS draws,
        arg_min(checkpoint_id, (pruning_seed, -seq)) AS draw_of
    FROM checkpoint_runs
    GROUP BY pruned_in, draw_point
),
parents AS (
    SELECT content_hash, arg_max(checkpoint_id, seq) AS checkpoint_id
    FROM checkpoint_runs
    WHERE content_hash <> ''
    GROUP BY content_hash
),
eval_subjects AS (
    SELECT e.*, COALESCE(NULLIF(e.model, ''), c.model, '') AS subject_model,
        NULLIF(e.checkpoint_id, '') AS subject_checkpoint
    FROM eval_runs e
    LEFT JOIN checkpoint_runs c ON c.checkpoint_id = e.checkpoint_id
),
measured AS (
    SELECT experiment, subject_model AS model, subject_checkpoint AS checkpoint_id
    FROM eval_subjects
    UNION
    SELECT experiment, model, NULLIF(NULLIF(checkpoint_id, ''), model) FROM profile_points
    UNION
    SELECT experiment, spec_model, NULLIF(result_checkpoint_id, '') FROM prune_runs
),
configuration_facts AS (
    SELECT s.experiment, s.model, s.checkpoint_id,
        CASE WHEN s.checkpoint_id IS NULL THEN 0.0::DOUBLE ELSE c.ratio END AS ratio,
        CASE WHEN s.checkpoint_id IS NULL THEN 0.0::DOUBLE ELSE c.achieved_ratio END
            AS achieved_ratio,
        COALESCE(c.parameters_before, bm.parameters) AS parameters_before,
        CASE WHEN s.checkpoint_id IS NULL THEN bm.parameters ELSE c.parameters_after END
            AS parameters_after,
        CASE WHEN s.checkpoint_id IS NULL THEN bm.macs ELSE c.macs_after END AS macs_after,
        c.bytes_in_memory,
        CASE WHEN s.checkpoint_id IS NULL THEN 0.0::DOUBLE ELSE c.zeroed_share END
            AS zeroed_share,
        c.cpu_kernel, c.cpu_macs_skipped_share,
        CASE WHEN s.checkpoint_id IS NULL THEN '{BASELINE_FAMILY}' ELSE c.method_family END
            AS method_family,
        CASE WHEN s.checkpoint_id IS NULL THEN 'none' ELSE c.pruning_method END
            AS pruning_method,
        COALESCE(c.recovered, false) AS recovered,
        parent.checkpoint_id AS parent_checkpoint_id,
        c.seq AS pruned_seq, c.pruning_seed, pd.draw_of, pd.draws
    FROM measured s
    LEFT JOIN checkpoint_runs c ON c.checkpoint_id = s.checkpoint_id
    LEFT JOIN point_draws pd ON pd.pruned_in = c.pruned_in AND pd.draw_point = c.draw_point
    LEFT JOIN parents parent ON parent.content_hash = c.parent_content_hash
    LEFT JOIN models bm ON bm.model = s.model
    WHERE ($experiment = '' OR s.experiment = $experiment) AND ($model = '' OR s.model = $model)
),
configurations AS (
    SELECT *,
        1 - parameters_after / NULLIF(parameters_before, 0) AS parameters_removed,
        COALESCE(method_family = '{BASELINE_FAMILY}', false) AND row_number() OVER (
            PARTITION BY experiment, model, COALESCE(method_family = '{BASELINE_FAMILY}', false)
            ORDER BY checkpoint_id IS NULL, pruned_seq DESC NULLS LAST, checkpoint_id
        ) = 1 AS is_baseline
    FROM configuration_facts
),
evaluations AS (
    SELECT e.request_id AS run_id, e.seq, {_CONFIGURATION.format(p="cfg.")},
        e.result_task AS task, e.result_samples AS samples, e.spec_num_fewshot AS num_fewshot,
        e.spec_limit AS sample_limit,
        e.result_energy_headline_component IS NOT NULL AS has_energy,
        e.result_energy_net_joules_median AS net_joules,
        e.result_energy_net_joules_low AS net_joules_low,
        e.result_energy_net_joules_high AS net_joules_high,
        e.result_energy_gross_joules_median AS gross_joules,
        e.result_energy_gross_joules_low AS gross_joules_low,
        e.result_energy_gross_joules_high AS gross_joules_high,
        e.result_energy_joules_per_token AS joules_per_token,
        e.result_energy_joules_per_sample AS joules_per_sample,
        e.result_energy_tokens AS tokens,
        e.result_energy_tokens_per_second_median AS tokens_per_second,
        e.result_energy_tokens_per_second_low AS tokens_per_second_low,
        e.result_energy_tokens_per_second_high AS tokens_per_second_high,
        e.result_energy_wall_seconds_median AS wall_seconds,
        e.result_energy_wall_seconds_low AS wall_seconds_low,
        e.result_energy_wall_seconds_high AS wall_seconds_high,
        e.result_energy_peak_rss_bytes AS peak_rss_bytes,
        e.result_energy_peak_cuda_bytes AS peak_cuda_bytes,
        e.result_energy_device_name AS device,
        e.result_energy_hardware AS hardware,
        e.result_energy_headline_component AS headline_component,
        hc.method AS measurement_method,
        e.result_energy_estimated AS estimated,
        e.result_energy_gpu_shared AS gpu_shared,
        e.result_energy_repeats AS repeats,
        e.create_time AS recorded_at,
        e.job_name
    FROM eval_subjects e
    JOIN configurations cfg
        ON cfg.experiment = e.experiment AND cfg.model = e.subject_model
        AND cfg.checkpoint_id IS NOT DISTINCT FROM e.subject_checkpoint
    LEFT JOIN energy_components hc
        ON hc.run_kind = 'eval' AND hc.run_id = e.request_id
        AND hc.component = e.result_energy_headline_component
    WHERE $task = '' OR e.result_task = $task
),
metric_facts AS (
    SELECT m.run_id, m.position, m.task AS metric_task, m.metric, m.value, m.stderr, m.samples,
        r.task AS run_task, r.experiment, r.model,
        {_KIND} AS metric_kind,
        {_RANK} AS metric_rank
    FROM metrics m
    JOIN evaluations r ON r.run_id = m.run_id
),
task_headlines AS (
    SELECT experiment, model, run_task AS task, metric AS headline_metric,
        metric_kind AS headline_kind
    FROM metric_facts
    QUALIFY row_number() OVER (
        PARTITION BY experiment, model, run_task
        ORDER BY metric_task <> run_task, metric_rank, position, metric
    ) = 1
),
run_headlines AS (
    SELECT f.run_id, f.metric_task, f.metric, f.value, f.stderr, f.metric_kind
    FROM metric_facts f
    JOIN task_headlines h
        ON h.experiment = f.experiment AND h.model = f.model AND h.task = f.run_task
        AND h.headline_metric = f.metric
    QUALIFY row_number() OVER (
        PARTITION BY f.run_id ORDER BY f.metric_task <> f.run_task, f.position
    ) = 1
),
run_perplexity AS (
    SELECT run_id, metric, value
    FROM metric_facts
    WHERE metric_kind = 'perplexity'
    QUALIFY row_number() OVER (
        PARTITION BY run_id ORDER BY metric_task <> run_task, metric_rank, metric, metric_task
    ) = 1
),
scored AS (
    SELECT r.*, h.metric AS headline_metric, h.metric_kind AS headline_kind,
        h.value AS headline_value, h.stderr AS headline_stderr
    FROM evaluations r
    LEFT JOIN run_headlines h ON h.run_id = r.run_id
)
"""

_RUNS = f"""{_BASE}
SELECT
    r.run_id, r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio,
    r.pruning_method, r.method_family, r.bytes_in_memory, r.parameters_after, r.macs_after,
    r.task,
    r.parameters_before,
    CASE WHEN r.headline_kind = 'accuracy' THEN r.headline_metric END AS metric,
    CASE WHEN r.headline_kind = 'accuracy' THEN r.headline_value END AS accuracy,
    CASE WHEN r.headline_kind = 'accuracy' THEN r.headline_stderr END AS accuracy_stderr,
    p.metric AS perplexity_metric, p.value AS perplexity,
    r.samples, r.num_fewshot, r.sample_limit,
    {_ENERGY.format(p="r.")},
    r.peak_rss_bytes, r.peak_cuda_bytes, r.device, r.hardware, r.headline_component,
    r.measurement_method, r.estimated, r.gpu_shared, r.repeats, r.recorded_at, r.job_name,
    r.parameters_removed, r.recovered, r.parent_checkpoint_id, r.is_baseline,
    r.headline_metric, r.headline_kind, r.headline_value, r.headline_stderr
FROM scored r
LEFT JOIN run_perplexity p ON p.run_id = r.run_id
ORDER BY r.experiment, r.model, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST, r.task, r.seq
"""

_ACCURACY_VS_SPARSITY = f"""{_BASE}
SELECT
    r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio, r.parameters_after,
    m.metric_task AS task, m.metric, m.value AS accuracy, m.stderr AS accuracy_stderr,
    m.samples, r.run_id, r.method_family, r.is_baseline,
    COALESCE(m.metric = r.headline_metric AND m.metric_task = r.task, false) AS is_headline
FROM scored r
JOIN metric_facts m ON m.run_id = r.run_id
WHERE m.metric_kind = 'accuracy'
ORDER BY r.experiment, r.model, task, m.metric, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST,
    r.seq
"""

_ENERGY_VS_SPARSITY = f"""{_BASE}
SELECT
    r.experiment, r.model, r.checkpoint_id, r.ratio, r.achieved_ratio, r.parameters_after,
    r.macs_after, r.task,
    {_ENERGY.format(p="r.")},
    r.samples, r.peak_rss_bytes, r.peak_cuda_bytes, r.device, r.hardware,
    r.headline_component, r.measurement_method, r.estimated, r.gpu_shared, r.repeats, r.run_id,
    r.method_family, r.is_baseline,
    r.net_joules_low / NULLIF(r.tokens, 0) AS joules_per_token_low,
    r.net_joules_high / NULLIF(r.tokens, 0) AS joules_per_token_high,
    1000 * r.wall_seconds / NULLIF(r.samples, 0) AS latency_ms,
    1000 * r.wall_seconds_low / NULLIF(r.samples, 0) AS latency_ms_low,
    1000 * r.wall_seconds_high / NULLIF(r.samples, 0) AS latency_ms_high
FROM scored r
WHERE r.has_energy
ORDER BY r.experiment, r.model, r.task, r.ratio NULLS LAST, r.checkpoint_id NULLS FIRST, r.seq
"""

_CONFIGURATIONS = f"""{_BASE},
tasks_run AS (
    SELECT experiment, model, checkpoint_id, task, count(*) AS runs
    FROM evaluations
    GROUP BY experiment, model, checkpoint_id, task
)
SELECT {_CONFIGURATION.format(p="c.")},
    t.task, h.headline_metric, h.headline_kind, COALESCE(t.runs, 0) AS runs
FROM configurations c
LEFT JOIN tasks_run t
    ON t.experiment = c.experiment AND t.model = c.model
    AND t.checkpoint_id IS NOT DISTINCT FROM c.checkpoint_id
LEFT JOIN task_headlines h
    ON h.experiment = c.experiment AND h.model = c.model AND h.task = t.task
WHERE $task = '' OR t.task = $task
ORDER BY c.experiment, c.model, c.ratio NULLS LAST, c.checkpoint_id NULLS FIRST, t.task
"""

_EXPERIMENTS = f"""{_BASE},
activity AS (
    SELECT experiment, spec_model AS model, NULLIF(result_checkpoint_id, '') AS checkpoint_id,
        NULL::VARCHAR AS task, 'prune' AS kind, create_time
    FROM prune_runs
    WHERE ($experiment = '' OR experiment = $experiment)
        AND ($model = '' OR spec_model = $model)
        AND $task = ''
    UNION ALL
    SELECT experiment, model, checkpoint_id, task, 'eval' AS kind, recorded_at AS create_time
    FROM evaluations
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
    FROM evaluations
    UNION ALL
    SELECT 'prune' AS run_kind, request_id, experiment, spec_model,
        NULLIF(result_checkpoint_id, ''), spec_ratio, NULL::VARCHAR,
        result_energy_headline_component
    FROM prune_runs
    WHERE ($experiment = '' OR experiment = $experiment)
        AND ($model = '' OR spec_model = $model)
        AND $task = ''
)
SELECT o.run_id, o.run_kind, o.experiment, o.model, o.checkpoint_id, o.ratio, o.task,
    c.component, c.method AS measurement_method, c.estimated,
    c.component = o.headline_component AS headline,
    c.net_joules_median AS net_joules, c.net_joules_low, c.net_joules_high,
    c.gross_joules_median AS gross_joules, c.gross_joules_low, c.gross_joules_high,
    c.idle_watts
FROM energy_components c
JOIN owners o ON o.run_kind = c.run_kind AND o.run_id = c.run_id
ORDER BY o.experiment, o.model, o.run_kind, o.ratio NULLS LAST, o.task, o.run_id, c.position
"""

_LAYERS = """
SELECT p.experiment, p.spec_model AS model, NULLIF(p.result_checkpoint_id, '') AS checkpoint_id,
    p.spec_ratio AS ratio, p.result_achieved_ratio AS achieved_ratio, l.index AS layer,
    l.attention_heads, l.key_value_heads, l.intermediate_size, l.kept, p.request_id AS run_id
FROM layer_shapes l
JOIN prune_runs p ON p.request_id = l.prune_run_id
WHERE ($experiment = '' OR p.experiment = $experiment)
    AND ($model = '' OR p.spec_model = $model)
ORDER BY p.experiment, p.spec_model, p.spec_ratio, p.seq, l.index
"""

_PRUNE_RUNS = f"""{_BASE}
SELECT request_id AS run_id, experiment, spec_model AS model,
    NULLIF(result_checkpoint_id, '') AS checkpoint_id, spec_method AS pruning_method,
    spec_ratio AS ratio, result_achieved_ratio AS achieved_ratio, method_family,
    result_bytes_in_memory AS bytes_in_memory, result_layers_after AS layers_after,
    result_parameters_before AS parameters_before, result_parameters_after AS parameters_after,
    result_prunable_parameters_before AS prunable_parameters_before,
    result_prunable_parameters_after AS prunable_parameters_after,
    result_macs_before AS macs_before, result_macs_after AS macs_after,
    result_bytes_on_disk AS bytes_on_disk, result_wall_seconds AS wall_seconds,
    result_uniform AS uniform, result_architecture AS architecture,
    spec_prune_attention_heads AS prune_attention_heads, spec_prune_mlp AS prune_mlp,
    spec_prune_hidden AS prune_hidden, spec_keep_first_layers AS keep_first_layers,
    spec_keep_last_layers AS keep_last_layers, spec_round_to AS round_to,
    spec_calibration_samples AS calibration_samples, spec_seed AS seed,
    result_energy_net_joules_median AS energy_net_joules,
    result_energy_net_joules_low AS energy_net_joules_low,
    result_energy_net_joules_high AS energy_net_joules_high,
    result_energy_estimated AS energy_estimated,
    result_content_hash AS content_hash, create_time AS recorded_at, job_name,
    recovered, result_recovery_steps AS recovery_steps,
    result_recovery_energy_net_joules_median AS recovery_net_joules,
    result_recovery_final_loss AS recovery_final_loss,
    NULLIF(result_recovery_parent_content_hash, '') AS recovery_parent_content_hash
FROM prune_facts
WHERE ($experiment = '' OR experiment = $experiment)
    AND ($model = '' OR spec_model = $model)
ORDER BY experiment, spec_model, spec_ratio, seq
"""

# Inputs of the computed views --------------------------------------------------------------

_SCORED_RUNS = f"""{_BASE}
SELECT * FROM scored ORDER BY seq
"""

_METRIC_ROWS = f"""{_BASE}
SELECT r.run_id, r.seq, {_CONFIGURATION.format(p="r.")}, r.task, m.metric_task, m.metric,
    m.value, m.stderr, m.metric_kind,
    COALESCE(m.metric = r.headline_metric AND m.metric_task = r.task, false) AS is_headline,
    r.net_joules, r.net_joules_low, r.net_joules_high, r.joules_per_token, r.estimated
FROM scored r
JOIN metric_facts m ON m.run_id = r.run_id
ORDER BY r.seq, m.position
"""

_ITEM_SCORES = f"""{_BASE}
SELECT i.run_id, i.task, i.metric, i.doc_id, i.value
FROM item_scores i
JOIN evaluations r ON r.run_id = i.run_id
"""

_PROFILE_WINDOWS = f"""{_BASE}
SELECT p.request_id AS run_id, {_CONFIGURATION.format(p="cfg.")},
    p.* EXCLUDE (request_id, experiment, model, checkpoint_id),
    r.result_estimated AS estimated, r.result_energy_method AS energy_method
FROM profile_points p
JOIN profile_runs r ON r.request_id = p.request_id
JOIN configurations cfg
    ON cfg.experiment = p.experiment AND cfg.model = p.model
    AND cfg.checkpoint_id IS NOT DISTINCT FROM NULLIF(NULLIF(p.checkpoint_id, ''), p.model)
ORDER BY p.experiment, p.model, p.request_id, p.round, p.position
"""

_PRUNE_COSTS = f"""{_BASE}
SELECT result_checkpoint_id AS checkpoint_id,
    result_energy_net_joules_median AS pruning_joules,
    result_recovery_energy_net_joules_median AS recovery_joules, recovered,
    result_energy_energy_method AS pruning_method,
    result_recovery_energy_energy_method AS recovery_method,
    experiment AS pruned_in, draw_point, spec_seed AS pruning_seed
FROM prune_facts
WHERE result_checkpoint_id <> ''
    AND ($experiment = '' OR experiment = $experiment)
    AND ($model = '' OR spec_model = $model)
ORDER BY seq
"""

_ANALYSIS = """
WITH recorded AS (
    SELECT experiment, create_time, spec_analysis_accuracy_points AS accuracy_points,
        spec_analysis_energy_relative AS energy_relative, spec_analysis_adjustment AS adjustment,
        spec_seed AS seed, spec_analysis_workload_prompt_tokens AS prompt_tokens,
        spec_analysis_workload_output_tokens AS output_tokens,
        spec_analysis_workload_batch_size AS workload_batch_size
    FROM eval_runs
    UNION ALL
    SELECT experiment, create_time, spec_analysis_accuracy_points,
        spec_analysis_energy_relative, spec_analysis_adjustment, spec_seed,
        spec_analysis_workload_prompt_tokens, spec_analysis_workload_output_tokens,
        spec_analysis_workload_batch_size
    FROM profile_runs
)
SELECT experiment, arg_max(accuracy_points, create_time) AS accuracy_points,
    arg_max(energy_relative, create_time) AS energy_relative,
    arg_max(adjustment, create_time) AS adjustment, arg_max(seed, create_time) AS seed,
    arg_max(prompt_tokens, create_time) AS prompt_tokens,
    arg_max(output_tokens, create_time) AS output_tokens,
    arg_max(workload_batch_size, create_time) AS workload_batch_size
FROM recorded
WHERE ($experiment = '' OR experiment = $experiment) AND accuracy_points IS NOT NULL
GROUP BY experiment
"""
"""Each experiment's margins, adjustment, workload (``EvalSpec.analysis``) and seed of its
latest run."""


def in_range(frame: pd.DataFrame) -> pd.DataFrame:
    """An input frame of a computed view with every number beyond its bound read as missing.

    The bound is ``limits.record_number_bound`` of the column's name, the rule the service
    records under; a run stored before that rule (or through the store's own API) may hold any
    finite value, and one of them must not make a view fail (a sum of ``1e308`` overflows) nor
    pass as a measurement: it is shown as missing, out of range. Boolean columns are kept.
    """
    out_of_range = {}
    for name in frame.columns:
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        bound = record_number_bound(str(name))
        beyond = column.abs() > bound
        if beyond.any():
            out_of_range[name] = column.astype("float64").mask(beyond)
    return frame.assign(**out_of_range) if out_of_range else frame


@dataclass(frozen=True)
class ComputedView:
    """A view computed in Python from the rows of SQL queries.

    Attributes:
        inputs: The SQL of each input frame, by name; filters as the SQL views.
        compute: Turns the input frames into the view's rows.
    """

    inputs: Mapping[str, str]
    compute: Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]


_MEASURED = {"runs": _SCORED_RUNS, "items": _ITEM_SCORES, "analysis": _ANALYSIS}
_PROFILED = {"windows": _PROFILE_WINDOWS, "costs": _PRUNE_COSTS, "analysis": _ANALYSIS}

COMPUTED_VIEWS: Mapping[str, ComputedView] = {
    "pareto_front": ComputedView(_MEASURED, fronts.pareto_front_table),
    "task_breakdown": ComputedView(
        {"metrics": _METRIC_ROWS, **_MEASURED, "windows": _PROFILE_WINDOWS},
        comparisons.task_breakdown_table,
    ),
    "profile": ComputedView({"windows": _PROFILE_WINDOWS}, profiles.profile_table),
    "findings": ComputedView({**_MEASURED, "windows": _PROFILE_WINDOWS}, findings_table),
    "payback": ComputedView({**_MEASURED, **_PROFILED}, profiles.payback_table),
    "payback_windows": ComputedView({**_MEASURED, **_PROFILED}, profiles.payback_windows_table),
    "method_comparison": ComputedView(
        {**_MEASURED, "windows": _PROFILE_WINDOWS}, comparisons.method_comparison_table
    ),
    "tradeoff": ComputedView({**_MEASURED, **_PROFILED}, fronts.tradeoff_table),
    "comparisons": ComputedView(
        {**_MEASURED, "windows": _PROFILE_WINDOWS}, comparisons.comparisons_table
    ),
}
"""The views computed in Python from SQL inputs, by name."""

VIEW_SQL: Mapping[str, str] = {
    "runs": _RUNS,
    "accuracy_vs_sparsity": _ACCURACY_VS_SPARSITY,
    "energy_vs_sparsity": _ENERGY_VS_SPARSITY,
    "experiments": _EXPERIMENTS,
    "energy_components": _ENERGY_COMPONENTS,
    "layers": _LAYERS,
    "prune_runs": _PRUNE_RUNS,
    "configurations": _CONFIGURATIONS,
}
"""The SQL of every SQL view, by name. Each row of each view is described in VIEW_DOCS."""

VIEW_NAMES: tuple[str, ...] = (*VIEW_SQL, *COMPUTED_VIEWS)
"""Every view, SQL or computed."""

VIEW_DOCS: Mapping[str, str] = {
    "runs": "One row per eval run: its configuration (model, ratio, method family, whether it "
    "is the baseline), task, the task's headline metric and value (metric, accuracy: NULL for a "
    "task whose headline is not an accuracy), primary perplexity, and the headline energy and "
    "speed.",
    "accuracy_vs_sparsity": "One row per eval run and accuracy metric (acc, acc_norm): "
    "accuracy and its stderr against ratio; is_headline marks the task's headline metric. "
    "Perplexity metrics are not included.",
    "energy_vs_sparsity": "One row per eval run that has an energy report: net and gross "
    "joules, J/token (its interval the net-energy interval per token), J/sample, tokens/s, wall "
    "time and latency per sample with their intervals, against ratio.",
    "pareto_front": "Per experiment and set of tasks, the configurations no other beats on both "
    "mean headline accuracy over tasks and headline net energy summed over those tasks. Runs of "
    "a configuration and task are averaged first; net_joules_low/high are sums of the per-task "
    "bounds. Each point names its cheaper neighbour on the front and the verdicts of the step "
    "from it (accuracy paired by document over the shared tasks; the summed net energy, not "
    "interleaved, has an interval and no verdict), judged as one 'front steps' family per "
    "experiment; step_distinct is false when either verdict is equivalent or inconclusive.",
    "task_breakdown": "One row per configuration, task and metric (accuracy, perplexity and "
    "other): the value and net energy against the baseline of the same model and experiment, "
    "as differences and relative differences, and each change with its 95% interval (the "
    "headline accuracy: the findings view's change, paired by document, with its verdict, "
    "margin and family; energy of eval runs, not interleaved: the intervals' opposite ends, "
    "without a verdict). The report's table is its headline rows.",
    "experiments": "One row per experiment: models, checkpoints, prune and eval runs, tasks, "
    "first and last record time.",
    "energy_components": "One row per energy component (cpu, gpu, ram) of every eval and prune "
    "run, with its measurement method and whether it is the headline component.",
    "layers": "One row per decoder layer of every prune run's checkpoint: heads, key/value "
    "heads, MLP width and whether the layer was kept out of pruning.",
    "prune_runs": "One row per prune run: method, target and achieved ratio, parameters, "
    "MACs and size before and after, the energy of the pruning itself, and of the LoRA "
    "recovery when the run had one (recovered, recovery_steps, recovery_net_joules).",
    "configurations": "One row per configuration (a checkpoint of a model in an experiment, or "
    "the base model measured directly) and task it was evaluated on (task NULL when it was only "
    "pruned or profiled): target ratio, the shares of prunable and of all parameters removed, "
    "method family, lineage, whether it is its model's baseline, the task's headline "
    "metric, and its pruning draw: pruning_seed, draw_of (the checkpoint of the first draw of "
    "its point) and draws (the point's draws, pruning.seeds).",
    "profile": "One row per experiment, model, checkpoint, phase (prefill, decode) and batch "
    "size of the energy profiles: J/token (net joules over tokens), tokens/s and latency per "
    "batch, each a median over rounds with its interval; the target ratio (share of prunable "
    "parameters) and the share of all parameters removed; above_idle says whether the net "
    "energy's interval lies above 0; cpu_seconds_per_token is the process's CPU time per "
    "token, the work the estimate without power counters follows.",
    "findings": "Every difference against the baseline of the same model and experiment with "
    "its paired interval: kind 'energy' per profile phase and batch size (J/token, paired by "
    "round, relative change), kind 'accuracy' per task (the headline metric, paired by "
    "document, difference in points; and over the tasks shared with the baseline, metric 'mean "
    "accuracy', task NULL). verdict is lower, higher, equivalent (two one-sided tests inside "
    "± margin, the experiment's margins) or inconclusive (also with fewer than 3 rounds), "
    "adjusted within its family (family, family_size, adjustment): per experiment and model, "
    "'primary' (energy at the largest prefill batch and each task's headline accuracy) and "
    "'secondary' (the rest); p_difference and p_equivalence are the unadjusted tests; text is "
    "the ready description ('lower: −23.4% [...]', 'no paired data' for runs without "
    "per-document scores); energy rows carry their energy_method and estimated. With a declared "
    "request mix (workload), phase 'request' rows give J/request (prefill J/token x prompt + "
    "decode J/token x output tokens, paired by round; secondary family). The pruning draws of "
    "a point (pruning.seeds) are one accuracy row on the first draw's checkpoint: the draws' "
    "mean, its interval over documents and draws (two-stage bootstrap), draws and the range "
    "of the draws' values (draw_low, draw_high).",
    "payback": "One row per compressed checkpoint with an energy profile: the pruning's and "
    "the recovery fine-tuning's net joules, the J/token saved against the baseline (paired "
    "change in the prefill phase at the largest profiled batch size) and the inference tokens "
    "after which the saving has repaid the cost, with its interval; '≥ N tokens (possibly "
    "never)' when the saving's interval reaches 0 (open_ended), 'never' only when the saving is "
    "measurably not above 0, 'not comparable' when cost and saving were measured differently "
    "(energy_method of the saving, cost_energy_method of the costs, estimated); the energy "
    "change's verdict and family come from the findings view. The interval propagates the "
    "change's, the baseline J/token's and the cost's (the mean and spread of the point's "
    "pruning draws, cost_draws) by Monte Carlo seeded with the experiment's seed "
    "(interval_method); with a workload, J and CPU-s per request, the request change's verdict "
    "and the payback in requests.",
    "payback_windows": "The payback view in every profiled phase and batch size (one row per "
    "compressed checkpoint, phase and batch size): the saving per token of that window against "
    "the same cost, with the same propagated interval, verdict and family; without the request "
    "mix.",
    "method_comparison": "One row per pair of compression methods of equal size (the same "
    "target ratio of a model: width vs depth vs width+int8) and per profile phase and batch "
    "size (J/token, paired by round) or per task (accuracy, paired by document): b against a, "
    "with its 95% interval and verdict, judged as one 'pairwise' family per experiment and "
    "model.",
    "tradeoff": "One row per configuration and task, and per configuration over all its tasks "
    "(task NULL): headline accuracy with its standard error against energy, the profile's "
    "J/token at its largest batch where the configurations of the front were profiled, else "
    "net energy (energy_measure says which); on_front marks the Pareto front of each "
    "experiment and task (or task set), and each front point names its cheaper neighbour and "
    "the verdicts of the step from it ('front steps' family); payback is the payback view's "
    "text.",
    "comparisons": "One row per ordered pair of configurations (a, b) of a model in an "
    "experiment and per task both report, and one over all the tasks they share (task NULL): "
    "b against a in headline accuracy (points, paired by document) and energy (per task: net "
    "energy, intervals' opposite ends, no verdict; over all tasks: the profile's J/token paired "
    "by round where both were profiled together, else the summed net energy, no verdict), each "
    "with its 95% interval, verdict and text. A pair with the baseline carries the findings "
    "view's change and family; other pairs are one 'pairwise' family per experiment and model.",
}
"""A sentence on each view, for the export and the app."""


def sql_parameters(sql: str, experiment: str, model: str, task: str) -> dict[str, str]:
    """Returns the named parameters one SQL statement uses, of the three filters."""
    values = {"experiment": experiment, "model": model, "task": task}
    return {name: value for name, value in values.items() if f"${name}" in sql}
