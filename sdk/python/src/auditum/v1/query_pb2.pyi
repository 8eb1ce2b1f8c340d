import datetime

from auditum.v1 import event_pb2 as _event_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSONL: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PARQUET: _ClassVar[ExportFormat]

class SummaryDimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_DIMENSION_UNSPECIFIED: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_ACTION: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_ACTOR_ID: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_ACTOR_TYPE: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_TARGET_TYPE: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_TARGET_ID: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_OUTCOME: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_SERVICE: _ClassVar[SummaryDimension]
    SUMMARY_DIMENSION_SOURCE_IP: _ClassVar[SummaryDimension]

class TimeBucket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_BUCKET_UNSPECIFIED: _ClassVar[TimeBucket]
    TIME_BUCKET_HOUR: _ClassVar[TimeBucket]
    TIME_BUCKET_DAY: _ClassVar[TimeBucket]
    TIME_BUCKET_WEEK: _ClassVar[TimeBucket]
    TIME_BUCKET_MONTH: _ClassVar[TimeBucket]
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_JSONL: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_PARQUET: ExportFormat
SUMMARY_DIMENSION_UNSPECIFIED: SummaryDimension
SUMMARY_DIMENSION_ACTION: SummaryDimension
SUMMARY_DIMENSION_ACTOR_ID: SummaryDimension
SUMMARY_DIMENSION_ACTOR_TYPE: SummaryDimension
SUMMARY_DIMENSION_TARGET_TYPE: SummaryDimension
SUMMARY_DIMENSION_TARGET_ID: SummaryDimension
SUMMARY_DIMENSION_OUTCOME: SummaryDimension
SUMMARY_DIMENSION_SERVICE: SummaryDimension
SUMMARY_DIMENSION_SOURCE_IP: SummaryDimension
TIME_BUCKET_UNSPECIFIED: TimeBucket
TIME_BUCKET_HOUR: TimeBucket
TIME_BUCKET_DAY: TimeBucket
TIME_BUCKET_WEEK: TimeBucket
TIME_BUCKET_MONTH: TimeBucket

class QueryRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token", "descending")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    filter: _event_pb2.EventFilter
    page_size: int
    page_token: str
    descending: bool
    def __init__(self, filter: _Optional[_Union[_event_pb2.EventFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., descending: bool = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("events", "next_page_token", "stats")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.StoredEvent]
    next_page_token: str
    stats: QueryStats
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.StoredEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., stats: _Optional[_Union[QueryStats, _Mapping]] = ...) -> None: ...

class QueryStats(_message.Message):
    __slots__ = ("batches_considered", "batches_pruned", "row_groups_considered", "row_groups_pruned", "rows_considered", "rows_pruned", "rows_read", "batches_opened", "row_groups_pruned_by_bloom", "rows_matched", "unsealed_considered", "bytes_read", "read_requests", "pages_read", "row_groups_pruned_by_index")
    BATCHES_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_PRUNED_FIELD_NUMBER: _ClassVar[int]
    ROW_GROUPS_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    ROW_GROUPS_PRUNED_FIELD_NUMBER: _ClassVar[int]
    ROWS_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    ROWS_PRUNED_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    BATCHES_OPENED_FIELD_NUMBER: _ClassVar[int]
    ROW_GROUPS_PRUNED_BY_BLOOM_FIELD_NUMBER: _ClassVar[int]
    ROWS_MATCHED_FIELD_NUMBER: _ClassVar[int]
    UNSEALED_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    READ_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PAGES_READ_FIELD_NUMBER: _ClassVar[int]
    ROW_GROUPS_PRUNED_BY_INDEX_FIELD_NUMBER: _ClassVar[int]
    batches_considered: int
    batches_pruned: int
    row_groups_considered: int
    row_groups_pruned: int
    rows_considered: int
    rows_pruned: int
    rows_read: int
    batches_opened: int
    row_groups_pruned_by_bloom: int
    rows_matched: int
    unsealed_considered: int
    bytes_read: int
    read_requests: int
    pages_read: int
    row_groups_pruned_by_index: int
    def __init__(self, batches_considered: _Optional[int] = ..., batches_pruned: _Optional[int] = ..., row_groups_considered: _Optional[int] = ..., row_groups_pruned: _Optional[int] = ..., rows_considered: _Optional[int] = ..., rows_pruned: _Optional[int] = ..., rows_read: _Optional[int] = ..., batches_opened: _Optional[int] = ..., row_groups_pruned_by_bloom: _Optional[int] = ..., rows_matched: _Optional[int] = ..., unsealed_considered: _Optional[int] = ..., bytes_read: _Optional[int] = ..., read_requests: _Optional[int] = ..., pages_read: _Optional[int] = ..., row_groups_pruned_by_index: _Optional[int] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("filter", "format", "include_unsealed", "raw")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNSEALED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    filter: _event_pb2.EventFilter
    format: ExportFormat
    include_unsealed: bool
    raw: bool
    def __init__(self, filter: _Optional[_Union[_event_pb2.EventFilter, _Mapping]] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., include_unsealed: bool = ..., raw: bool = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("chunk", "summary")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    summary: ExportSummary
    def __init__(self, chunk: _Optional[bytes] = ..., summary: _Optional[_Union[ExportSummary, _Mapping]] = ...) -> None: ...

class ExportSummary(_message.Message):
    __slots__ = ("rows", "sha256", "checkpoint", "unsealed_rows")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    UNSEALED_ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    sha256: str
    checkpoint: str
    unsealed_rows: int
    def __init__(self, rows: _Optional[int] = ..., sha256: _Optional[str] = ..., checkpoint: _Optional[str] = ..., unsealed_rows: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("filter", "after_seq", "from_beginning")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FROM_BEGINNING_FIELD_NUMBER: _ClassVar[int]
    filter: _event_pb2.EventFilter
    after_seq: int
    from_beginning: bool
    def __init__(self, filter: _Optional[_Union[_event_pb2.EventFilter, _Mapping]] = ..., after_seq: _Optional[int] = ..., from_beginning: bool = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "progress")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.StoredEvent
    progress: SubscribeProgress
    def __init__(self, event: _Optional[_Union[_event_pb2.StoredEvent, _Mapping]] = ..., progress: _Optional[_Union[SubscribeProgress, _Mapping]] = ...) -> None: ...

class SubscribeProgress(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    def __init__(self, cursor: _Optional[int] = ...) -> None: ...

class SummarizeRequest(_message.Message):
    __slots__ = ("filter", "group_by", "bucket", "limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: _event_pb2.EventFilter
    group_by: _containers.RepeatedScalarFieldContainer[SummaryDimension]
    bucket: TimeBucket
    limit: int
    def __init__(self, filter: _Optional[_Union[_event_pb2.EventFilter, _Mapping]] = ..., group_by: _Optional[_Iterable[_Union[SummaryDimension, str]]] = ..., bucket: _Optional[_Union[TimeBucket, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class SummarizeResponse(_message.Message):
    __slots__ = ("rows", "total_events", "truncated", "checkpoint")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[SummaryRow]
    total_events: int
    truncated: bool
    checkpoint: str
    def __init__(self, rows: _Optional[_Iterable[_Union[SummaryRow, _Mapping]]] = ..., total_events: _Optional[int] = ..., truncated: bool = ..., checkpoint: _Optional[str] = ...) -> None: ...

class SummaryRow(_message.Message):
    __slots__ = ("bucket_start", "keys", "count")
    BUCKET_START_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    bucket_start: _timestamp_pb2.Timestamp
    keys: _containers.RepeatedScalarFieldContainer[str]
    count: int
    def __init__(self, bucket_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., keys: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ...) -> None: ...
