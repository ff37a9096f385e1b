from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class LayerShape(_message.Message):
    __slots__ = ("index", "attention_heads", "key_value_heads", "intermediate_size", "kept")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_HEADS_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUE_HEADS_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    index: int
    attention_heads: int
    key_value_heads: int
    intermediate_size: int
    kept: bool
    def __init__(self, index: _Optional[int] = ..., attention_heads: _Optional[int] = ..., key_value_heads: _Optional[int] = ..., intermediate_size: _Optional[int] = ..., kept: _Optional[bool] = ...) -> None: ...
