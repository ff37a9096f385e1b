from greenprune.api.common.v1 import energy_pb2 as _energy_pb2
from greenprune.api.common.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvalSpec(_message.Message):
    __slots__ = ("checkpoint_id", "model", "tasks", "task_paths", "num_fewshot", "limit", "batch_size", "device", "repeats", "warmup_batches", "idle_seconds", "seed", "profile", "task_sources", "analysis")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TASK_PATHS_FIELD_NUMBER: _ClassVar[int]
    NUM_FEWSHOT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_BATCHES_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TASK_SOURCES_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    model: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    task_paths: _containers.RepeatedScalarFieldContainer[str]
    num_fewshot: int
    limit: int
    batch_size: int
    device: str
    repeats: int
    warmup_batches: int
    idle_seconds: float
    seed: int
    profile: ProfileSpec
    task_sources: _containers.RepeatedScalarFieldContainer[str]
    analysis: Analysis
    def __init__(self, checkpoint_id: _Optional[str] = ..., model: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., task_paths: _Optional[_Iterable[str]] = ..., num_fewshot: _Optional[int] = ..., limit: _Optional[int] = ..., batch_size: _Optional[int] = ..., device: _Optional[str] = ..., repeats: _Optional[int] = ..., warmup_batches: _Optional[int] = ..., idle_seconds: _Optional[float] = ..., seed: _Optional[int] = ..., profile: _Optional[_Union[ProfileSpec, _Mapping]] = ..., task_sources: _Optional[_Iterable[str]] = ..., analysis: _Optional[_Union[Analysis, _Mapping]] = ...) -> None: ...

class Analysis(_message.Message):
    __slots__ = ("accuracy_points", "energy_relative", "adjustment", "workload")
    ACCURACY_POINTS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    accuracy_points: float
    energy_relative: float
    adjustment: str
    workload: Workload
    def __init__(self, accuracy_points: _Optional[float] = ..., energy_relative: _Optional[float] = ..., adjustment: _Optional[str] = ..., workload: _Optional[_Union[Workload, _Mapping]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("prompt_tokens", "output_tokens", "batch_size")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    output_tokens: int
    batch_size: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class ProfileSpec(_message.Message):
    __slots__ = ("checkpoint_ids", "batch_sizes", "prefill_tokens", "decode_tokens", "rounds", "window_seconds", "precision", "max_rounds", "threads")
    CHECKPOINT_IDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_ids: _containers.RepeatedScalarFieldContainer[str]
    batch_sizes: _containers.RepeatedScalarFieldContainer[int]
    prefill_tokens: int
    decode_tokens: int
    rounds: int
    window_seconds: float
    precision: float
    max_rounds: int
    threads: int
    def __init__(self, checkpoint_ids: _Optional[_Iterable[str]] = ..., batch_sizes: _Optional[_Iterable[int]] = ..., prefill_tokens: _Optional[int] = ..., decode_tokens: _Optional[int] = ..., rounds: _Optional[int] = ..., window_seconds: _Optional[float] = ..., precision: _Optional[float] = ..., max_rounds: _Optional[int] = ..., threads: _Optional[int] = ...) -> None: ...

class ProfilePoint(_message.Message):
    __slots__ = ("checkpoint_id", "phase", "batch_size", "round", "position", "net_joules", "gross_joules", "wall_seconds", "tokens", "iterations", "cpu_seconds", "other_cpu_seconds", "steal_seconds", "cpu_mhz", "attempts", "disturbed", "gpu_shared", "kernel_path", "macs_skipped_share")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    NET_JOULES_FIELD_NUMBER: _ClassVar[int]
    GROSS_JOULES_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OTHER_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STEAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CPU_MHZ_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DISTURBED_FIELD_NUMBER: _ClassVar[int]
    GPU_SHARED_FIELD_NUMBER: _ClassVar[int]
    KERNEL_PATH_FIELD_NUMBER: _ClassVar[int]
    MACS_SKIPPED_SHARE_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    phase: str
    batch_size: int
    round: int
    position: int
    net_joules: float
    gross_joules: float
    wall_seconds: float
    tokens: int
    iterations: int
    cpu_seconds: float
    other_cpu_seconds: float
    steal_seconds: float
    cpu_mhz: float
    attempts: int
    disturbed: bool
    gpu_shared: bool
    kernel_path: str
    macs_skipped_share: float
    def __init__(self, checkpoint_id: _Optional[str] = ..., phase: _Optional[str] = ..., batch_size: _Optional[int] = ..., round: _Optional[int] = ..., position: _Optional[int] = ..., net_joules: _Optional[float] = ..., gross_joules: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., tokens: _Optional[int] = ..., iterations: _Optional[int] = ..., cpu_seconds: _Optional[float] = ..., other_cpu_seconds: _Optional[float] = ..., steal_seconds: _Optional[float] = ..., cpu_mhz: _Optional[float] = ..., attempts: _Optional[int] = ..., disturbed: _Optional[bool] = ..., gpu_shared: _Optional[bool] = ..., kernel_path: _Optional[str] = ..., macs_skipped_share: _Optional[float] = ...) -> None: ...

class ProfileResult(_message.Message):
    __slots__ = ("points", "energy_method", "estimated", "hardware", "device_name", "idle_watts", "prefill_tokens", "decode_tokens", "threads", "usable_cpus", "watts_per_cpu", "rounds", "precision", "stop_reason", "widest_interval", "remeasured_windows", "disturbed_windows", "disturbance_note")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METHOD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    IDLE_WATTS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    USABLE_CPUS_FIELD_NUMBER: _ClassVar[int]
    WATTS_PER_CPU_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    WIDEST_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    REMEASURED_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DISTURBED_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DISTURBANCE_NOTE_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[ProfilePoint]
    energy_method: str
    estimated: bool
    hardware: str
    device_name: str
    idle_watts: float
    prefill_tokens: int
    decode_tokens: int
    threads: int
    usable_cpus: int
    watts_per_cpu: float
    rounds: int
    precision: float
    stop_reason: str
    widest_interval: float
    remeasured_windows: int
    disturbed_windows: int
    disturbance_note: str
    def __init__(self, points: _Optional[_Iterable[_Union[ProfilePoint, _Mapping]]] = ..., energy_method: _Optional[str] = ..., estimated: _Optional[bool] = ..., hardware: _Optional[str] = ..., device_name: _Optional[str] = ..., idle_watts: _Optional[float] = ..., prefill_tokens: _Optional[int] = ..., decode_tokens: _Optional[int] = ..., threads: _Optional[int] = ..., usable_cpus: _Optional[int] = ..., watts_per_cpu: _Optional[float] = ..., rounds: _Optional[int] = ..., precision: _Optional[float] = ..., stop_reason: _Optional[str] = ..., widest_interval: _Optional[float] = ..., remeasured_windows: _Optional[int] = ..., disturbed_windows: _Optional[int] = ..., disturbance_note: _Optional[str] = ...) -> None: ...

class ItemScore(_message.Message):
    __slots__ = ("doc_id", "metric", "value")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    doc_id: int
    metric: str
    value: float
    def __init__(self, doc_id: _Optional[int] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("task", "metric", "value", "stderr", "samples")
    TASK_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    task: str
    metric: str
    value: float
    stderr: float
    samples: int
    def __init__(self, task: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., stderr: _Optional[float] = ..., samples: _Optional[int] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task", "metrics", "samples", "energy", "items")
    TASK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    task: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricValue]
    samples: int
    energy: _energy_pb2.EnergyReport
    items: _containers.RepeatedCompositeFieldContainer[ItemScore]
    def __init__(self, task: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricValue, _Mapping]]] = ..., samples: _Optional[int] = ..., energy: _Optional[_Union[_energy_pb2.EnergyReport, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ItemScore, _Mapping]]] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("tasks", "versions", "model", "profile")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASKS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskResult]
    versions: _containers.ScalarMap[str, str]
    model: str
    profile: ProfileResult
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ..., versions: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ..., profile: _Optional[_Union[ProfileResult, _Mapping]] = ...) -> None: ...

class EvalJob(_message.Message):
    __slots__ = ("name", "status", "spec", "result")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: _jobs_pb2.JobStatus
    spec: EvalSpec
    result: EvalResult
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[_jobs_pb2.JobStatus, _Mapping]] = ..., spec: _Optional[_Union[EvalSpec, _Mapping]] = ..., result: _Optional[_Union[EvalResult, _Mapping]] = ...) -> None: ...

class CreateEvalJobRequest(_message.Message):
    __slots__ = ("request_id", "spec", "experiment", "validate_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    spec: EvalSpec
    experiment: str
    validate_only: bool
    def __init__(self, request_id: _Optional[str] = ..., spec: _Optional[_Union[EvalSpec, _Mapping]] = ..., experiment: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateEvalJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: EvalJob
    def __init__(self, job: _Optional[_Union[EvalJob, _Mapping]] = ...) -> None: ...

class GetEvalJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetEvalJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: EvalJob
    def __init__(self, job: _Optional[_Union[EvalJob, _Mapping]] = ...) -> None: ...

class ListEvalJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "experiment")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    experiment: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., experiment: _Optional[str] = ...) -> None: ...

class ListEvalJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[EvalJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[EvalJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelEvalJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelEvalJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: EvalJob
    def __init__(self, job: _Optional[_Union[EvalJob, _Mapping]] = ...) -> None: ...

class WatchEvalJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchEvalJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: EvalJob
    def __init__(self, job: _Optional[_Union[EvalJob, _Mapping]] = ...) -> None: ...

class TaskFile(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: bytes
    def __init__(self, path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class TaskSource(_message.Message):
    __slots__ = ("name", "files", "tasks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    files: _containers.RepeatedCompositeFieldContainer[TaskFile]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., files: _Optional[_Iterable[_Union[TaskFile, _Mapping]]] = ..., tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateTaskSourceRequest(_message.Message):
    __slots__ = ("task_source",)
    TASK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    task_source: TaskSource
    def __init__(self, task_source: _Optional[_Union[TaskSource, _Mapping]] = ...) -> None: ...

class CreateTaskSourceResponse(_message.Message):
    __slots__ = ("task_source",)
    TASK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    task_source: TaskSource
    def __init__(self, task_source: _Optional[_Union[TaskSource, _Mapping]] = ...) -> None: ...
