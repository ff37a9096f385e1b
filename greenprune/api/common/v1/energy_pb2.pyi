from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Interval(_message.Message):
    __slots__ = ("median", "low", "high", "count", "method")
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    median: float
    low: float
    high: float
    count: int
    method: str
    def __init__(self, median: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., count: _Optional[int] = ..., method: _Optional[str] = ...) -> None: ...

class ComponentEnergy(_message.Message):
    __slots__ = ("component", "method", "estimated", "gross_joules", "net_joules", "idle_watts")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    GROSS_JOULES_FIELD_NUMBER: _ClassVar[int]
    NET_JOULES_FIELD_NUMBER: _ClassVar[int]
    IDLE_WATTS_FIELD_NUMBER: _ClassVar[int]
    component: str
    method: str
    estimated: bool
    gross_joules: Interval
    net_joules: Interval
    idle_watts: float
    def __init__(self, component: _Optional[str] = ..., method: _Optional[str] = ..., estimated: _Optional[bool] = ..., gross_joules: _Optional[_Union[Interval, _Mapping]] = ..., net_joules: _Optional[_Union[Interval, _Mapping]] = ..., idle_watts: _Optional[float] = ...) -> None: ...

class EnergyReport(_message.Message):
    __slots__ = ("components", "headline_component", "net_joules", "gross_joules", "wall_seconds", "tokens_per_second", "tokens", "samples", "joules_per_token", "joules_per_sample", "peak_rss_bytes", "peak_cuda_bytes", "device_name", "hardware", "gpu_shared", "estimated", "repeats", "repeat_net_joules", "energy_method", "cpu_seconds", "other_cpu_seconds", "threads", "watts_per_cpu", "windows", "disturbed_windows")
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    HEADLINE_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    NET_JOULES_FIELD_NUMBER: _ClassVar[int]
    GROSS_JOULES_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    JOULES_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOULES_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_CUDA_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    GPU_SHARED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    REPEAT_NET_JOULES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METHOD_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OTHER_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    WATTS_PER_CPU_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DISTURBED_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    components: _containers.RepeatedCompositeFieldContainer[ComponentEnergy]
    headline_component: str
    net_joules: Interval
    gross_joules: Interval
    wall_seconds: Interval
    tokens_per_second: Interval
    tokens: int
    samples: int
    joules_per_token: float
    joules_per_sample: float
    peak_rss_bytes: int
    peak_cuda_bytes: int
    device_name: str
    hardware: str
    gpu_shared: bool
    estimated: bool
    repeats: int
    repeat_net_joules: _containers.RepeatedScalarFieldContainer[float]
    energy_method: str
    cpu_seconds: Interval
    other_cpu_seconds: Interval
    threads: int
    watts_per_cpu: float
    windows: int
    disturbed_windows: int
    def __init__(self, components: _Optional[_Iterable[_Union[ComponentEnergy, _Mapping]]] = ..., headline_component: _Optional[str] = ..., net_joules: _Optional[_Union[Interval, _Mapping]] = ..., gross_joules: _Optional[_Union[Interval, _Mapping]] = ..., wall_seconds: _Optional[_Union[Interval, _Mapping]] = ..., tokens_per_second: _Optional[_Union[Interval, _Mapping]] = ..., tokens: _Optional[int] = ..., samples: _Optional[int] = ..., joules_per_token: _Optional[float] = ..., joules_per_sample: _Optional[float] = ..., peak_rss_bytes: _Optional[int] = ..., peak_cuda_bytes: _Optional[int] = ..., device_name: _Optional[str] = ..., hardware: _Optional[str] = ..., gpu_shared: _Optional[bool] = ..., estimated: _Optional[bool] = ..., repeats: _Optional[int] = ..., repeat_net_joules: _Optional[_Iterable[float]] = ..., energy_method: _Optional[str] = ..., cpu_seconds: _Optional[_Union[Interval, _Mapping]] = ..., other_cpu_seconds: _Optional[_Union[Interval, _Mapping]] = ..., threads: _Optional[int] = ..., watts_per_cpu: _Optional[float] = ..., windows: _Optional[int] = ..., disturbed_windows: _Optional[int] = ...) -> None: ...
