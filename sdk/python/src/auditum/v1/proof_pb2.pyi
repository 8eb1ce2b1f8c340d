from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetCheckpointRequest(_message.Message):
    __slots__ = ("log",)
    LOG_FIELD_NUMBER: _ClassVar[int]
    log: str
    def __init__(self, log: _Optional[str] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    def __init__(self, checkpoint: _Optional[str] = ...) -> None: ...

class GetEventProofRequest(_message.Message):
    __slots__ = ("log", "seq", "event_id")
    LOG_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    log: str
    seq: int
    event_id: str
    def __init__(self, log: _Optional[str] = ..., seq: _Optional[int] = ..., event_id: _Optional[str] = ...) -> None: ...

class GetEventProofResponse(_message.Message):
    __slots__ = ("proof_json",)
    PROOF_JSON_FIELD_NUMBER: _ClassVar[int]
    proof_json: str
    def __init__(self, proof_json: _Optional[str] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("log", "old_size", "new_size")
    LOG_FIELD_NUMBER: _ClassVar[int]
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    log: str
    old_size: int
    new_size: int
    def __init__(self, log: _Optional[str] = ..., old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyLogRequest(_message.Message):
    __slots__ = ("log",)
    LOG_FIELD_NUMBER: _ClassVar[int]
    log: str
    def __init__(self, log: _Optional[str] = ...) -> None: ...

class VerifyLogResponse(_message.Message):
    __slots__ = ("entries_checked", "events_checked", "problem", "object", "done", "ok")
    ENTRIES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    entries_checked: int
    events_checked: int
    problem: str
    object: str
    done: bool
    ok: bool
    def __init__(self, entries_checked: _Optional[int] = ..., events_checked: _Optional[int] = ..., problem: _Optional[str] = ..., object: _Optional[str] = ..., done: bool = ..., ok: bool = ...) -> None: ...
