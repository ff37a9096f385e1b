import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from greenprune.api.common.v1 import energy_pb2 as _energy_pb2
from greenprune.api.common.v1 import jobs_pb2 as _jobs_pb2
from greenprune.api.common.v1 import kernels_pb2 as _kernels_pb2
from greenprune.api.common.v1 import layers_pb2 as _layers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PruningMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRUNING_METHOD_UNSPECIFIED: _ClassVar[PruningMethod]
    PRUNING_METHOD_MAGNITUDE_L1: _ClassVar[PruningMethod]
    PRUNING_METHOD_MAGNITUDE_L2: _ClassVar[PruningMethod]
    PRUNING_METHOD_TAYLOR: _ClassVar[PruningMethod]
    PRUNING_METHOD_RANDOM: _ClassVar[PruningMethod]

class PruningStructure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRUNING_STRUCTURE_UNSPECIFIED: _ClassVar[PruningStructure]
    PRUNING_STRUCTURE_WIDTH: _ClassVar[PruningStructure]
    PRUNING_STRUCTURE_DEPTH: _ClassVar[PruningStructure]
    PRUNING_STRUCTURE_WIDTH_AND_DEPTH: _ClassVar[PruningStructure]

class DepthCriterion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPTH_CRITERION_UNSPECIFIED: _ClassVar[DepthCriterion]
    DEPTH_CRITERION_BLOCK_INFLUENCE: _ClassVar[DepthCriterion]
    DEPTH_CRITERION_LAST: _ClassVar[DepthCriterion]

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_INT8: _ClassVar[Quantization]
    QUANTIZATION_INT4: _ClassVar[Quantization]

class Sparsity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPARSITY_UNSPECIFIED: _ClassVar[Sparsity]
    SPARSITY_MAGNITUDE: _ClassVar[Sparsity]
    SPARSITY_WANDA: _ClassVar[Sparsity]
    SPARSITY_SPARSEGPT: _ClassVar[Sparsity]

class SparsityPattern(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPARSITY_PATTERN_UNSPECIFIED: _ClassVar[SparsityPattern]
    SPARSITY_PATTERN_UNSTRUCTURED: _ClassVar[SparsityPattern]
    SPARSITY_PATTERN_2_4: _ClassVar[SparsityPattern]

class RecoveryLoss(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOVERY_LOSS_UNSPECIFIED: _ClassVar[RecoveryLoss]
    RECOVERY_LOSS_LM: _ClassVar[RecoveryLoss]
    RECOVERY_LOSS_DISTILL: _ClassVar[RecoveryLoss]
PRUNING_METHOD_UNSPECIFIED: PruningMethod
PRUNING_METHOD_MAGNITUDE_L1: PruningMethod
PRUNING_METHOD_MAGNITUDE_L2: PruningMethod
PRUNING_METHOD_TAYLOR: PruningMethod
PRUNING_METHOD_RANDOM: PruningMethod
PRUNING_STRUCTURE_UNSPECIFIED: PruningStructure
PRUNING_STRUCTURE_WIDTH: PruningStructure
PRUNING_STRUCTURE_DEPTH: PruningStructure
PRUNING_STRUCTURE_WIDTH_AND_DEPTH: PruningStructure
DEPTH_CRITERION_UNSPECIFIED: DepthCriterion
DEPTH_CRITERION_BLOCK_INFLUENCE: DepthCriterion
DEPTH_CRITERION_LAST: DepthCriterion
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_INT8: Quantization
QUANTIZATION_INT4: Quantization
SPARSITY_UNSPECIFIED: Sparsity
SPARSITY_MAGNITUDE: Sparsity
SPARSITY_WANDA: Sparsity
SPARSITY_SPARSEGPT: Sparsity
SPARSITY_PATTERN_UNSPECIFIED: SparsityPattern
SPARSITY_PATTERN_UNSTRUCTURED: SparsityPattern
SPARSITY_PATTERN_2_4: SparsityPattern
RECOVERY_LOSS_UNSPECIFIED: RecoveryLoss
RECOVERY_LOSS_LM: RecoveryLoss
RECOVERY_LOSS_DISTILL: RecoveryLoss

class CalibrationSpec(_message.Message):
    __slots__ = ("samples", "sequence_length", "source")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    samples: int
    sequence_length: int
    source: str
    def __init__(self, samples: _Optional[int] = ..., sequence_length: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class PruneSpec(_message.Message):
    __slots__ = ("model", "method", "ratio", "prune_attention_heads", "prune_mlp", "prune_hidden", "keep_first_layers", "keep_last_layers", "round_to", "calibration", "seed", "structure", "depth_criterion", "depth_share", "quantization", "quantization_group_size", "recovery", "sparsity", "sparsity_pattern", "sparsity_ratio")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    PRUNE_ATTENTION_HEADS_FIELD_NUMBER: _ClassVar[int]
    PRUNE_MLP_FIELD_NUMBER: _ClassVar[int]
    PRUNE_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIRST_LAYERS_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_LAYERS_FIELD_NUMBER: _ClassVar[int]
    ROUND_TO_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_CRITERION_FIELD_NUMBER: _ClassVar[int]
    DEPTH_SHARE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_PATTERN_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    model: str
    method: PruningMethod
    ratio: float
    prune_attention_heads: bool
    prune_mlp: bool
    prune_hidden: bool
    keep_first_layers: int
    keep_last_layers: int
    round_to: int
    calibration: CalibrationSpec
    seed: int
    structure: PruningStructure
    depth_criterion: DepthCriterion
    depth_share: float
    quantization: Quantization
    quantization_group_size: int
    recovery: RecoverySpec
    sparsity: Sparsity
    sparsity_pattern: SparsityPattern
    sparsity_ratio: float
    def __init__(self, model: _Optional[str] = ..., method: _Optional[_Union[PruningMethod, str]] = ..., ratio: _Optional[float] = ..., prune_attention_heads: _Optional[bool] = ..., prune_mlp: _Optional[bool] = ..., prune_hidden: _Optional[bool] = ..., keep_first_layers: _Optional[int] = ..., keep_last_layers: _Optional[int] = ..., round_to: _Optional[int] = ..., calibration: _Optional[_Union[CalibrationSpec, _Mapping]] = ..., seed: _Optional[int] = ..., structure: _Optional[_Union[PruningStructure, str]] = ..., depth_criterion: _Optional[_Union[DepthCriterion, str]] = ..., depth_share: _Optional[float] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., quantization_group_size: _Optional[int] = ..., recovery: _Optional[_Union[RecoverySpec, _Mapping]] = ..., sparsity: _Optional[_Union[Sparsity, str]] = ..., sparsity_pattern: _Optional[_Union[SparsityPattern, str]] = ..., sparsity_ratio: _Optional[float] = ...) -> None: ...

class PruneResult(_message.Message):
    __slots__ = ("checkpoint_id", "parameters_before", "parameters_after", "prunable_parameters_before", "prunable_parameters_after", "achieved_ratio", "macs_before", "macs_after", "bytes_on_disk", "layers", "wall_seconds", "energy", "uniform", "content_hash", "architecture", "versions", "method_family", "layers_before", "layers_after", "removed_layers", "bytes_in_memory", "quantization_bits", "quantization_scheme", "quantization_library", "recovery", "zeroed_parameters", "semi_structured_macs", "cpu_kernel", "cuda_kernel", "zeroed_share", "sparsity")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_AFTER_FIELD_NUMBER: _ClassVar[int]
    PRUNABLE_PARAMETERS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PRUNABLE_PARAMETERS_AFTER_FIELD_NUMBER: _ClassVar[int]
    ACHIEVED_RATIO_FIELD_NUMBER: _ClassVar[int]
    MACS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MACS_AFTER_FIELD_NUMBER: _ClassVar[int]
    BYTES_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    UNIFORM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FAMILY_FIELD_NUMBER: _ClassVar[int]
    LAYERS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_AFTER_FIELD_NUMBER: _ClassVar[int]
    REMOVED_LAYERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_MEMORY_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_BITS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_SCHEME_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_LIBRARY_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    ZEROED_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SEMI_STRUCTURED_MACS_FIELD_NUMBER: _ClassVar[int]
    CPU_KERNEL_FIELD_NUMBER: _ClassVar[int]
    CUDA_KERNEL_FIELD_NUMBER: _ClassVar[int]
    ZEROED_SHARE_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    parameters_before: int
    parameters_after: int
    prunable_parameters_before: int
    prunable_parameters_after: int
    achieved_ratio: float
    macs_before: int
    macs_after: int
    bytes_on_disk: int
    layers: _containers.RepeatedCompositeFieldContainer[_layers_pb2.LayerShape]
    wall_seconds: float
    energy: _energy_pb2.EnergyReport
    uniform: bool
    content_hash: str
    architecture: str
    versions: _containers.ScalarMap[str, str]
    method_family: str
    layers_before: int
    layers_after: int
    removed_layers: _containers.RepeatedScalarFieldContainer[int]
    bytes_in_memory: int
    quantization_bits: int
    quantization_scheme: str
    quantization_library: str
    recovery: RecoveryResult
    zeroed_parameters: int
    semi_structured_macs: int
    cpu_kernel: _kernels_pb2.KernelPath
    cuda_kernel: _kernels_pb2.KernelPath
    zeroed_share: float
    sparsity: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., parameters_before: _Optional[int] = ..., parameters_after: _Optional[int] = ..., prunable_parameters_before: _Optional[int] = ..., prunable_parameters_after: _Optional[int] = ..., achieved_ratio: _Optional[float] = ..., macs_before: _Optional[int] = ..., macs_after: _Optional[int] = ..., bytes_on_disk: _Optional[int] = ..., layers: _Optional[_Iterable[_Union[_layers_pb2.LayerShape, _Mapping]]] = ..., wall_seconds: _Optional[float] = ..., energy: _Optional[_Union[_energy_pb2.EnergyReport, _Mapping]] = ..., uniform: _Optional[bool] = ..., content_hash: _Optional[str] = ..., architecture: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ..., method_family: _Optional[str] = ..., layers_before: _Optional[int] = ..., layers_after: _Optional[int] = ..., removed_layers: _Optional[_Iterable[int]] = ..., bytes_in_memory: _Optional[int] = ..., quantization_bits: _Optional[int] = ..., quantization_scheme: _Optional[str] = ..., quantization_library: _Optional[str] = ..., recovery: _Optional[_Union[RecoveryResult, _Mapping]] = ..., zeroed_parameters: _Optional[int] = ..., semi_structured_macs: _Optional[int] = ..., cpu_kernel: _Optional[_Union[_kernels_pb2.KernelPath, _Mapping]] = ..., cuda_kernel: _Optional[_Union[_kernels_pb2.KernelPath, _Mapping]] = ..., zeroed_share: _Optional[float] = ..., sparsity: _Optional[str] = ...) -> None: ...

class PruneJob(_message.Message):
    __slots__ = ("name", "status", "spec", "result")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: _jobs_pb2.JobStatus
    spec: PruneSpec
    result: PruneResult
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[_jobs_pb2.JobStatus, _Mapping]] = ..., spec: _Optional[_Union[PruneSpec, _Mapping]] = ..., result: _Optional[_Union[PruneResult, _Mapping]] = ...) -> None: ...

class CreatePruneJobRequest(_message.Message):
    __slots__ = ("request_id", "spec", "experiment", "validate_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    spec: PruneSpec
    experiment: str
    validate_only: bool
    def __init__(self, request_id: _Optional[str] = ..., spec: _Optional[_Union[PruneSpec, _Mapping]] = ..., experiment: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreatePruneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: PruneJob
    def __init__(self, job: _Optional[_Union[PruneJob, _Mapping]] = ...) -> None: ...

class GetPruneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPruneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: PruneJob
    def __init__(self, job: _Optional[_Union[PruneJob, _Mapping]] = ...) -> None: ...

class ListPruneJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "experiment")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    experiment: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., experiment: _Optional[str] = ...) -> None: ...

class ListPruneJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[PruneJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[PruneJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelPruneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelPruneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: PruneJob
    def __init__(self, job: _Optional[_Union[PruneJob, _Mapping]] = ...) -> None: ...

class WatchPruneJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchPruneJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: PruneJob
    def __init__(self, job: _Optional[_Union[PruneJob, _Mapping]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint_id",)
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    def __init__(self, checkpoint_id: _Optional[str] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint_id", "manifest_json", "create_time")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    manifest_json: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, checkpoint_id: _Optional[str] = ..., manifest_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecoverySpec(_message.Message):
    __slots__ = ("rank", "alpha", "target_modules", "steps", "learning_rate", "batch_size", "sequence_length", "seed", "source", "loss", "temperature")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    steps: int
    learning_rate: float
    batch_size: int
    sequence_length: int
    seed: int
    source: str
    loss: RecoveryLoss
    temperature: float
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., sequence_length: _Optional[int] = ..., seed: _Optional[int] = ..., source: _Optional[str] = ..., loss: _Optional[_Union[RecoveryLoss, str]] = ..., temperature: _Optional[float] = ...) -> None: ...

class RecoveryResult(_message.Message):
    __slots__ = ("energy", "steps", "tokens", "initial_loss", "final_loss", "trainable_parameters", "wall_seconds", "parent_content_hash", "loss", "temperature", "rezeroed_weights")
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARENT_CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    REZEROED_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    energy: _energy_pb2.EnergyReport
    steps: int
    tokens: int
    initial_loss: float
    final_loss: float
    trainable_parameters: int
    wall_seconds: float
    parent_content_hash: str
    loss: str
    temperature: float
    rezeroed_weights: int
    def __init__(self, energy: _Optional[_Union[_energy_pb2.EnergyReport, _Mapping]] = ..., steps: _Optional[int] = ..., tokens: _Optional[int] = ..., initial_loss: _Optional[float] = ..., final_loss: _Optional[float] = ..., trainable_parameters: _Optional[int] = ..., wall_seconds: _Optional[float] = ..., parent_content_hash: _Optional[str] = ..., loss: _Optional[str] = ..., temperature: _Optional[float] = ..., rezeroed_weights: _Optional[int] = ...) -> None: ...
