import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from greenprune.api.eval.v1 import eval_pb2 as _eval_pb2
from greenprune.api.pruning.v1 import pruning_pb2 as _pruning_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class View(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIEW_UNSPECIFIED: _ClassVar[View]
    VIEW_RUNS: _ClassVar[View]
    VIEW_ACCURACY_VS_SPARSITY: _ClassVar[View]
    VIEW_ENERGY_VS_SPARSITY: _ClassVar[View]
    VIEW_PARETO_FRONT: _ClassVar[View]
    VIEW_TASK_BREAKDOWN: _ClassVar[View]
    VIEW_EXPERIMENTS: _ClassVar[View]
    VIEW_ENERGY_COMPONENTS: _ClassVar[View]
    VIEW_LAYERS: _ClassVar[View]
    VIEW_PRUNE_RUNS: _ClassVar[View]
    VIEW_PROFILE: _ClassVar[View]
    VIEW_FINDINGS: _ClassVar[View]
    VIEW_PAYBACK: _ClassVar[View]
    VIEW_METHOD_COMPARISON: _ClassVar[View]
    VIEW_CONFIGURATIONS: _ClassVar[View]
    VIEW_TRADEOFF: _ClassVar[View]
    VIEW_COMPARISONS: _ClassVar[View]
    VIEW_PAYBACK_WINDOWS: _ClassVar[View]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PARQUET: _ClassVar[ExportFormat]
VIEW_UNSPECIFIED: View
VIEW_RUNS: View
VIEW_ACCURACY_VS_SPARSITY: View
VIEW_ENERGY_VS_SPARSITY: View
VIEW_PARETO_FRONT: View
VIEW_TASK_BREAKDOWN: View
VIEW_EXPERIMENTS: View
VIEW_ENERGY_COMPONENTS: View
VIEW_LAYERS: View
VIEW_PRUNE_RUNS: View
VIEW_PROFILE: View
VIEW_FINDINGS: View
VIEW_PAYBACK: View
VIEW_METHOD_COMPARISON: View
VIEW_CONFIGURATIONS: View
VIEW_TRADEOFF: View
VIEW_COMPARISONS: View
VIEW_PAYBACK_WINDOWS: View
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_PARQUET: ExportFormat

class PruneRun(_message.Message):
    __slots__ = ("request_id", "experiment", "spec", "result", "create_time", "job_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    experiment: str
    spec: _pruning_pb2.PruneSpec
    result: _pruning_pb2.PruneResult
    create_time: _timestamp_pb2.Timestamp
    job_name: str
    def __init__(self, request_id: _Optional[str] = ..., experiment: _Optional[str] = ..., spec: _Optional[_Union[_pruning_pb2.PruneSpec, _Mapping]] = ..., result: _Optional[_Union[_pruning_pb2.PruneResult, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_name: _Optional[str] = ...) -> None: ...

class EvalRun(_message.Message):
    __slots__ = ("request_id", "experiment", "checkpoint_id", "model", "spec", "result", "versions", "create_time", "job_name")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    experiment: str
    checkpoint_id: str
    model: str
    spec: _eval_pb2.EvalSpec
    result: _eval_pb2.TaskResult
    versions: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    job_name: str
    def __init__(self, request_id: _Optional[str] = ..., experiment: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., model: _Optional[str] = ..., spec: _Optional[_Union[_eval_pb2.EvalSpec, _Mapping]] = ..., result: _Optional[_Union[_eval_pb2.TaskResult, _Mapping]] = ..., versions: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_name: _Optional[str] = ...) -> None: ...

class RecordPruneRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PruneRun
    def __init__(self, run: _Optional[_Union[PruneRun, _Mapping]] = ...) -> None: ...

class RecordPruneRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: PruneRun
    created: bool
    def __init__(self, run: _Optional[_Union[PruneRun, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RecordEvalRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: EvalRun
    def __init__(self, run: _Optional[_Union[EvalRun, _Mapping]] = ...) -> None: ...

class RecordEvalRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: EvalRun
    created: bool
    def __init__(self, run: _Optional[_Union[EvalRun, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class BatchRecordEvalRunsRequest(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[EvalRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[EvalRun, _Mapping]]] = ...) -> None: ...

class BatchRecordEvalRunsResponse(_message.Message):
    __slots__ = ("created_count",)
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    created_count: int
    def __init__(self, created_count: _Optional[int] = ...) -> None: ...

class ProfileRun(_message.Message):
    __slots__ = ("request_id", "experiment", "model", "spec", "result", "create_time", "job_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    experiment: str
    model: str
    spec: _eval_pb2.EvalSpec
    result: _eval_pb2.ProfileResult
    create_time: _timestamp_pb2.Timestamp
    job_name: str
    def __init__(self, request_id: _Optional[str] = ..., experiment: _Optional[str] = ..., model: _Optional[str] = ..., spec: _Optional[_Union[_eval_pb2.EvalSpec, _Mapping]] = ..., result: _Optional[_Union[_eval_pb2.ProfileResult, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_name: _Optional[str] = ...) -> None: ...

class RecordProfileRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: ProfileRun
    def __init__(self, run: _Optional[_Union[ProfileRun, _Mapping]] = ...) -> None: ...

class RecordProfileRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: ProfileRun
    created: bool
    def __init__(self, run: _Optional[_Union[ProfileRun, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetPruneRunRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetPruneRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PruneRun
    def __init__(self, run: _Optional[_Union[PruneRun, _Mapping]] = ...) -> None: ...

class GetEvalRunRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetEvalRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: EvalRun
    def __init__(self, run: _Optional[_Union[EvalRun, _Mapping]] = ...) -> None: ...

class GetProfileRunRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetProfileRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: ProfileRun
    def __init__(self, run: _Optional[_Union[ProfileRun, _Mapping]] = ...) -> None: ...

class ListPruneRunsRequest(_message.Message):
    __slots__ = ("experiment", "page_size", "page_token")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    page_size: int
    page_token: str
    def __init__(self, experiment: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPruneRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PruneRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[PruneRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListEvalRunsRequest(_message.Message):
    __slots__ = ("experiment", "page_size", "page_token")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    page_size: int
    page_token: str
    def __init__(self, experiment: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEvalRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[EvalRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[EvalRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ViewFilter(_message.Message):
    __slots__ = ("experiment", "model", "task")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    model: str
    task: str
    def __init__(self, experiment: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.ListValue]
    def __init__(self, columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., rows: _Optional[_Iterable[_Union[_struct_pb2.ListValue, _Mapping]]] = ...) -> None: ...

class QueryViewRequest(_message.Message):
    __slots__ = ("view", "filter", "page_size", "page_token")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    view: View
    filter: ViewFilter
    page_size: int
    page_token: str
    def __init__(self, view: _Optional[_Union[View, str]] = ..., filter: _Optional[_Union[ViewFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryViewResponse(_message.Message):
    __slots__ = ("table", "next_page_token")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    table: Table
    next_page_token: str
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportViewRequest(_message.Message):
    __slots__ = ("view", "filter", "format", "page_token")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    view: View
    filter: ViewFilter
    format: ExportFormat
    page_token: str
    def __init__(self, view: _Optional[_Union[View, str]] = ..., filter: _Optional[_Union[ViewFilter, _Mapping]] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., page_token: _Optional[str] = ...) -> None: ...

class ExportViewResponse(_message.Message):
    __slots__ = ("data", "media_type", "filename", "next_page_token")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    filename: str
    next_page_token: str
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ..., filename: _Optional[str] = ..., next_page_token: _Optional[str] = ...) -> None: ...
