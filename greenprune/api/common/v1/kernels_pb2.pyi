from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class KernelPath(_message.Message):
    __slots__ = ("device", "name", "macs_skipped_share", "expectation")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MACS_SKIPPED_SHARE_FIELD_NUMBER: _ClassVar[int]
    EXPECTATION_FIELD_NUMBER: _ClassVar[int]
    device: str
    name: str
    macs_skipped_share: float
    expectation: str
    def __init__(self, device: _Optional[str] = ..., name: _Optional[str] = ..., macs_skipped_share: _Optional[float] = ..., expectation: _Optional[str] = ...) -> None: ...
