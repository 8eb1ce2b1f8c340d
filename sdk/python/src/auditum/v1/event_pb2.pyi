import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_TYPE_UNSPECIFIED: _ClassVar[ActorType]
    ACTOR_TYPE_USER: _ClassVar[ActorType]
    ACTOR_TYPE_SERVICE: _ClassVar[ActorType]
    ACTOR_TYPE_API_KEY: _ClassVar[ActorType]
    ACTOR_TYPE_SYSTEM: _ClassVar[ActorType]
    ACTOR_TYPE_ANONYMOUS: _ClassVar[ActorType]

class OutcomeResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_RESULT_UNSPECIFIED: _ClassVar[OutcomeResult]
    OUTCOME_RESULT_SUCCESS: _ClassVar[OutcomeResult]
    OUTCOME_RESULT_FAILURE: _ClassVar[OutcomeResult]
    OUTCOME_RESULT_DENIED: _ClassVar[OutcomeResult]
ACTOR_TYPE_UNSPECIFIED: ActorType
ACTOR_TYPE_USER: ActorType
ACTOR_TYPE_SERVICE: ActorType
ACTOR_TYPE_API_KEY: ActorType
ACTOR_TYPE_SYSTEM: ActorType
ACTOR_TYPE_ANONYMOUS: ActorType
OUTCOME_RESULT_UNSPECIFIED: OutcomeResult
OUTCOME_RESULT_SUCCESS: OutcomeResult
OUTCOME_RESULT_FAILURE: OutcomeResult
OUTCOME_RESULT_DENIED: OutcomeResult

class AuditEvent(_message.Message):
    __slots__ = ("id", "tenant_id", "occurred_at", "action", "actor", "target", "outcome", "context", "before", "after", "metadata", "subject_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    occurred_at: _timestamp_pb2.Timestamp
    action: str
    actor: Actor
    target: Target
    outcome: Outcome
    context: Context
    before: _struct_pb2.Struct
    after: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    subject_id: str
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., before: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., after: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., subject_id: _Optional[str] = ...) -> None: ...

class Actor(_message.Message):
    __slots__ = ("id", "type", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: ActorType
    name: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[ActorType, str]] = ..., name: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("type", "id", "name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    name: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("result", "error_code", "reason")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    result: OutcomeResult
    error_code: str
    reason: str
    def __init__(self, result: _Optional[_Union[OutcomeResult, str]] = ..., error_code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("request_id", "correlation_id", "session_id", "source_ip", "user_agent", "service")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    correlation_id: str
    session_id: str
    source_ip: str
    user_agent: str
    service: str
    def __init__(self, request_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., session_id: _Optional[str] = ..., source_ip: _Optional[str] = ..., user_agent: _Optional[str] = ..., service: _Optional[str] = ...) -> None: ...

class EventFilter(_message.Message):
    __slots__ = ("tenant_id", "start_time", "end_time", "actor_id", "actor_type", "actions", "target_type", "target_id", "outcome", "request_id", "correlation_id", "session_id", "source_ip")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    actor_id: str
    actor_type: ActorType
    actions: _containers.RepeatedScalarFieldContainer[str]
    target_type: str
    target_id: str
    outcome: OutcomeResult
    request_id: str
    correlation_id: str
    session_id: str
    source_ip: str
    def __init__(self, tenant_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor_id: _Optional[str] = ..., actor_type: _Optional[_Union[ActorType, str]] = ..., actions: _Optional[_Iterable[str]] = ..., target_type: _Optional[str] = ..., target_id: _Optional[str] = ..., outcome: _Optional[_Union[OutcomeResult, str]] = ..., request_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., session_id: _Optional[str] = ..., source_ip: _Optional[str] = ...) -> None: ...

class StoredEvent(_message.Message):
    __slots__ = ("event", "seq", "received_at", "sealed", "batch_index", "leaf_hash", "log")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    BATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    event: AuditEvent
    seq: int
    received_at: _timestamp_pb2.Timestamp
    sealed: bool
    batch_index: int
    leaf_hash: bytes
    log: str
    def __init__(self, event: _Optional[_Union[AuditEvent, _Mapping]] = ..., seq: _Optional[int] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sealed: bool = ..., batch_index: _Optional[int] = ..., leaf_hash: _Optional[bytes] = ..., log: _Optional[str] = ...) -> None: ...
