import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RestoreTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESTORE_TIER_UNSPECIFIED: _ClassVar[RestoreTier]
    RESTORE_TIER_EXPEDITED: _ClassVar[RestoreTier]
    RESTORE_TIER_STANDARD: _ClassVar[RestoreTier]
    RESTORE_TIER_BULK: _ClassVar[RestoreTier]
RESTORE_TIER_UNSPECIFIED: RestoreTier
RESTORE_TIER_EXPEDITED: RestoreTier
RESTORE_TIER_STANDARD: RestoreTier
RESTORE_TIER_BULK: RestoreTier

class TimeRangeScope(_message.Message):
    __slots__ = ("log", "tenant_id", "since", "until")
    LOG_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    log: str
    tenant_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, log: _Optional[str] = ..., tenant_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("scope", "reason")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    scope: TimeRangeScope
    reason: str
    def __init__(self, scope: _Optional[_Union[TimeRangeScope, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetLegalHoldResponse(_message.Message):
    __slots__ = ("hold_id", "batch_objects", "already_active", "gone")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    batch_objects: int
    already_active: bool
    gone: int
    def __init__(self, hold_id: _Optional[str] = ..., batch_objects: _Optional[int] = ..., already_active: bool = ..., gone: _Optional[int] = ...) -> None: ...

class ClearLegalHoldRequest(_message.Message):
    __slots__ = ("scope", "reason")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    scope: TimeRangeScope
    reason: str
    def __init__(self, scope: _Optional[_Union[TimeRangeScope, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ClearLegalHoldResponse(_message.Message):
    __slots__ = ("hold_ids", "batch_objects", "still_held", "gone")
    HOLD_IDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    STILL_HELD_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    hold_ids: _containers.RepeatedScalarFieldContainer[str]
    batch_objects: int
    still_held: int
    gone: int
    def __init__(self, hold_ids: _Optional[_Iterable[str]] = ..., batch_objects: _Optional[int] = ..., still_held: _Optional[int] = ..., gone: _Optional[int] = ...) -> None: ...

class ListLegalHoldsRequest(_message.Message):
    __slots__ = ("log",)
    LOG_FIELD_NUMBER: _ClassVar[int]
    log: str
    def __init__(self, log: _Optional[str] = ...) -> None: ...

class LegalHold(_message.Message):
    __slots__ = ("hold_id", "scope", "reason", "set_at", "set_by", "batch_objects")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SET_AT_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    BATCH_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    scope: TimeRangeScope
    reason: str
    set_at: _timestamp_pb2.Timestamp
    set_by: str
    batch_objects: int
    def __init__(self, hold_id: _Optional[str] = ..., scope: _Optional[_Union[TimeRangeScope, _Mapping]] = ..., reason: _Optional[str] = ..., set_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., set_by: _Optional[str] = ..., batch_objects: _Optional[int] = ...) -> None: ...

class ListLegalHoldsResponse(_message.Message):
    __slots__ = ("holds",)
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    holds: _containers.RepeatedCompositeFieldContainer[LegalHold]
    def __init__(self, holds: _Optional[_Iterable[_Union[LegalHold, _Mapping]]] = ...) -> None: ...

class RestoreBatchesRequest(_message.Message):
    __slots__ = ("scope", "days", "tier")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    scope: TimeRangeScope
    days: int
    tier: RestoreTier
    def __init__(self, scope: _Optional[_Union[TimeRangeScope, _Mapping]] = ..., days: _Optional[int] = ..., tier: _Optional[_Union[RestoreTier, str]] = ...) -> None: ...

class RestoreBatchesResponse(_message.Message):
    __slots__ = ("started", "in_progress", "already_restored", "not_archived", "gone", "started_count")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RESTORED_FIELD_NUMBER: _ClassVar[int]
    NOT_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    STARTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    started: _containers.RepeatedScalarFieldContainer[str]
    in_progress: int
    already_restored: int
    not_archived: int
    gone: int
    started_count: int
    def __init__(self, started: _Optional[_Iterable[str]] = ..., in_progress: _Optional[int] = ..., already_restored: _Optional[int] = ..., not_archived: _Optional[int] = ..., gone: _Optional[int] = ..., started_count: _Optional[int] = ...) -> None: ...

class EraseSubjectRequest(_message.Message):
    __slots__ = ("tenant_id", "subject_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    subject_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseTenantRequest(_message.Message):
    __slots__ = ("tenant_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseSubjectResponse(_message.Message):
    __slots__ = ("log", "kids")
    LOG_FIELD_NUMBER: _ClassVar[int]
    KIDS_FIELD_NUMBER: _ClassVar[int]
    log: str
    kids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, log: _Optional[str] = ..., kids: _Optional[_Iterable[str]] = ...) -> None: ...

class EraseTenantResponse(_message.Message):
    __slots__ = ("log", "keys_erased")
    LOG_FIELD_NUMBER: _ClassVar[int]
    KEYS_ERASED_FIELD_NUMBER: _ClassVar[int]
    log: str
    keys_erased: int
    def __init__(self, log: _Optional[str] = ..., keys_erased: _Optional[int] = ...) -> None: ...
