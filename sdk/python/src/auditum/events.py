"""Turns log() arguments into an encoded auditum.v1.AuditEvent, with the local checks of DESIGN §2.1."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
import time
from collections.abc import Mapping
from typing import Any, Union

from .context import CONTEXT_FIELDS, _current
from .errors import ValidationError
from .ids import new_id
from .v1 import event_pb2

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_BYTES = 128
MAX_SUBJECT_ID_BYTES = 256
MAX_TENANT_BYTES = 128
MAX_ACTION_BYTES = 128
MAX_ACTOR_ID_BYTES = 256
MAX_FUTURE_SECONDS = 300

_TENANT = re.compile(r"[A-Za-z0-9._:-]+\Z")
_ACTION = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\Z")

ACTOR_TYPES = {
    "user": event_pb2.ACTOR_TYPE_USER, "service": event_pb2.ACTOR_TYPE_SERVICE,
    "api_key": event_pb2.ACTOR_TYPE_API_KEY, "system": event_pb2.ACTOR_TYPE_SYSTEM,
    "anonymous": event_pb2.ACTOR_TYPE_ANONYMOUS,
}
OUTCOMES = {
    "success": event_pb2.OUTCOME_RESULT_SUCCESS, "failure": event_pb2.OUTCOME_RESULT_FAILURE,
    "denied": event_pb2.OUTCOME_RESULT_DENIED,
}
_OUTCOME_FIELDS = {name: {"result": value} for name, value in OUTCOMES.items()}  # shared: the constructor only reads them

_AuditEvent, _Actor, _Target, _Outcome, _Context = (
    event_pb2.AuditEvent, event_pb2.Actor, event_pb2.Target, event_pb2.Outcome, event_pb2.Context)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EMPTY: Mapping[str, Any] = {}
_known_good: set[tuple[str, str]] = set()  # (tenant, action) pairs already checked: few distinct ones per app

ActorArg = Union[Mapping[str, Any], str, None]
OutcomeArg = Union[Mapping[str, Any], str]
Timestamp = Union[_dt.datetime, float, int, None]


def _utf8_len(value: str) -> int:
    return len(value) if value.isascii() else len(value.encode("utf-8"))


def _enum(table: Mapping[str, int], value: Any, field: str, validate: bool) -> int:
    if isinstance(value, int):
        return value
    found = table.get(str(value).lower())
    if found is None:
        if validate:
            raise ValidationError(field, f"{value!r} is not one of {', '.join(table)}")
        return 0
    return found


def _struct(message: Any, value: Mapping[str, Any], field: str) -> None:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping (a JSON object), got {type(value).__name__}")
    try:
        # Struct.update() does this per key; strings and numbers (most values) are set here directly,
        # the rest (None, bools, nested objects and lists, wrong types) through Struct's own rules.
        fields = message.fields
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                fields[key].string_value = item
            elif kind is int or kind is float:
                fields[key].number_value = item
            else:
                message[key] = item
    except (ValueError, TypeError, AttributeError) as error:
        raise ValidationError(field, f"not JSON-representable: {error}") from None


def _timestamp(occurred_at: Timestamp, validate: bool) -> dict[str, int]:
    if occurred_at is None:
        nanos = time.time_ns()
    elif isinstance(occurred_at, _dt.datetime):
        if occurred_at.tzinfo is None:
            raise ValidationError("occurred_at", "a naive datetime; give it a timezone (e.g. datetime.now(timezone.utc))")
        delta = occurred_at - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    elif isinstance(occurred_at, (int, float)) and not isinstance(occurred_at, bool):
        nanos = int(occurred_at * 1_000_000_000)  # seconds since the epoch, like time.time()
    else:
        raise ValidationError("occurred_at", f"must be a datetime or seconds since the epoch, got {type(occurred_at).__name__}")
    if validate and occurred_at is not None and nanos > time.time_ns() + MAX_FUTURE_SECONDS * 1_000_000_000:
        raise ValidationError("occurred_at", f"more than {MAX_FUTURE_SECONDS // 60} minutes in the future")
    seconds, rest = divmod(nanos, 1_000_000_000)
    return {"seconds": seconds, "nanos": rest}


def _actor(who: Any, validate: bool) -> dict[str, Any]:
    if type(who) is str:
        return {"id": who}
    if type(who) is not dict and not isinstance(who, Mapping):
        raise ValidationError("actor", f"must be a mapping with id/type/name or an id string, got {type(who).__name__}")
    fields = {"id": who.get("id") or ""}
    kind = who.get("type")
    if kind is not None:
        found = ACTOR_TYPES.get(kind) if type(kind) is str else None
        fields["type"] = found if found is not None else _enum(ACTOR_TYPES, kind, "actor.type", validate)
    if who.get("name"):
        fields["name"] = who["name"]
    return fields


def _outcome(outcome: Any, validate: bool) -> dict[str, Any]:
    if type(outcome) is str:
        result = OUTCOMES.get(outcome)
        return {"result": result if result is not None else _enum(OUTCOMES, outcome, "outcome.result", validate)}
    if isinstance(outcome, Mapping):
        fields = {"result": _enum(OUTCOMES, outcome.get("result", ""), "outcome.result", validate)}
        for key in ("error_code", "reason"):
            if outcome.get(key):
                fields[key] = outcome[key]
        return fields
    return {"result": _enum(OUTCOMES, outcome, "outcome.result", validate)}


def _context(explicit: Mapping[str, Any] | None, ambient: Mapping[str, Any], default_service: str | None,
             validate: bool) -> dict[str, str]:
    explicit = explicit or {}
    if validate and explicit:
        unknown = set(explicit) - set(CONTEXT_FIELDS)
        if unknown:
            raise ValidationError("context", f"unknown key(s) {sorted(unknown)}; known: {', '.join(CONTEXT_FIELDS)}")
    values = {}
    for key in CONTEXT_FIELDS:  # explicit arguments win over the ambient context
        value = explicit.get(key) or ambient.get(key)
        if value:
            values[key] = str(value)
    if default_service and "service" not in values:
        values["service"] = default_service
    return values


def build_event(
    *,
    action: str,
    actor: ActorArg = None,
    target: Mapping[str, Any] | None = None,
    outcome: OutcomeArg = "success",
    tenant_id: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    id: str | None = None,
    occurred_at: Timestamp = None,
    default_tenant: str | None = None,
    default_service: str | None = None,
    validate: bool = True,
    subject_id: str | None = None,
) -> Any:
    """Returns the AuditEvent; raises ValidationError naming the field when validate is on."""
    event, _ = _build(action, actor, target, outcome, tenant_id, before, after, metadata, context, id, occurred_at,
                      default_tenant, default_service, validate, subject_id)
    if validate:
        check_event(event)
    return event


def encode_event(action: str, actor: ActorArg, target: Mapping[str, Any] | None, outcome: OutcomeArg,
                 tenant_id: str | None, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                 metadata: Mapping[str, Any] | None, context: Mapping[str, Any] | None, id: str | None,
                 occurred_at: Timestamp, default_tenant: str | None, default_service: str | None,
                 validate: bool, subject_id: str | None = None) -> tuple[str, bytes]:
    """log()'s build_event (same arguments, positional): the id and the encoded event, serialized once."""
    event, fields = _build(action, actor, target, outcome, tenant_id, before, after, metadata, context, id, occurred_at,
                           default_tenant, default_service, validate, subject_id)
    encoded = event.SerializeToString()
    if validate:
        # Check the values the event was built from (reading them back from the message costs more)
        # when they are what the message holds: plain strings and an int result.
        event_id, tenant, name, actor_fields = fields["id"], fields["tenant_id"], fields["action"], fields.get("actor")
        actor_id = actor_fields["id"] if actor_fields else ""
        result = fields["outcome"].get("result", 0)
        if type(event_id) is str and type(tenant) is str and type(name) is str and type(actor_id) is str and type(result) is int:
            context_fields = fields.get("context")
            _check(event_id, tenant, name, actor_id, result, context_fields.get("source_ip", "") if context_fields else "",
                   len(encoded))
        else:
            check_event(event, len(encoded))
    return event.id, encoded


def _build(action: str, actor: ActorArg, target: Mapping[str, Any] | None, outcome: OutcomeArg, tenant_id: str | None,
           before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None,
           context: Mapping[str, Any] | None, id: str | None, occurred_at: Timestamp, default_tenant: str | None,
           default_service: str | None, validate: bool, subject_id: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The AuditEvent, and the fields (all but the Structs) it was constructed from."""
    ambient = _current.get() or _EMPTY
    event_id = id or new_id()
    if occurred_at is None:  # the usual case, without _timestamp()'s checks of a given time
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
        stamp: dict[str, int] = {"seconds": seconds, "nanos": nanos}
    else:
        stamp = _timestamp(occurred_at, validate)
    result = _OUTCOME_FIELDS.get(outcome) if type(outcome) is str else None
    fields: dict[str, Any] = {
        "id": event_id, "tenant_id": tenant_id or default_tenant or "", "action": action or "",
        "occurred_at": stamp, "outcome": result if result is not None else _outcome(outcome, validate),
    }
    who = actor if actor is not None else ambient.get("actor")
    if who is not None:
        fields["actor"] = _actor(who, validate)
    if target is not None:
        if type(target) is not dict and not isinstance(target, Mapping):
            raise ValidationError("target", f"must be a mapping with type/id/name, got {type(target).__name__}")
        fields["target"] = {key: str(target[key]) for key in ("type", "id", "name") if target.get(key)}
    if context or ambient or default_service:
        values = _context(context, ambient, default_service, validate)
        if values:
            fields["context"] = values
    if subject_id:
        # The person the event's personal data is about (the server's encrypt_fields key); not stored.
        if validate and _utf8_len(str(subject_id)) > MAX_SUBJECT_ID_BYTES:
            raise ValidationError("subject_id", f"{_utf8_len(str(subject_id))} bytes, over the {MAX_SUBJECT_ID_BYTES}-byte limit")
        fields["subject_id"] = str(subject_id)
    event = _AuditEvent(**fields)
    if before is not None:
        _struct(event.before, before, "before")
    if after is not None:
        _struct(event.after, after, "after")
    if metadata is not None:
        _struct(event.metadata, metadata, "metadata")
    return event, fields


def check_event(event: Any, size: int | None = None) -> None:
    """The field rules of DESIGN §2.1 that need no server state (`size`: the encoded size, when known)."""
    _check(event.id, event.tenant_id, event.action, event.actor.id, event.outcome.result, event.context.source_ip,
           event.ByteSize() if size is None else size)


def _check(event_id: str, tenant_id: str, action: str, actor_id: str, result: int, source_ip: str, size: int) -> None:
    if _utf8_len(event_id) > MAX_ID_BYTES:
        raise ValidationError("id", f"{_utf8_len(event_id)} bytes, over the {MAX_ID_BYTES}-byte limit")
    pair = (tenant_id, action)
    if pair not in _known_good:
        _check_names(tenant_id, action)
        if len(_known_good) < 10_000:
            _known_good.add(pair)
    if not actor_id:
        raise ValidationError("actor.id", "required (pass actor= or set it in request_context)")
    if _utf8_len(actor_id) > MAX_ACTOR_ID_BYTES:
        raise ValidationError("actor.id", f"{_utf8_len(actor_id)} bytes, over the {MAX_ACTOR_ID_BYTES}-byte limit")
    if result == event_pb2.OUTCOME_RESULT_UNSPECIFIED:
        raise ValidationError("outcome.result", "required: success, failure or denied")
    if source_ip:
        try:
            ipaddress.ip_address(source_ip)
        except ValueError:
            raise ValidationError("context.source_ip", f"{source_ip!r} is not an IPv4 or IPv6 address") from None
    if size > MAX_EVENT_BYTES:
        raise ValidationError("event", f"encoded size {size} bytes, over the {MAX_EVENT_BYTES}-byte limit (before/after/metadata are the usual cause)")


def _check_names(tenant_id: str, action: str) -> None:
    if not tenant_id:
        raise ValidationError("tenant_id", "required (pass tenant_id= or set it on the client)")
    if _utf8_len(tenant_id) > MAX_TENANT_BYTES:
        raise ValidationError("tenant_id", f"{_utf8_len(tenant_id)} bytes, over the {MAX_TENANT_BYTES}-byte limit")
    if not _TENANT.match(tenant_id):
        raise ValidationError("tenant_id", f"{tenant_id!r} must match [A-Za-z0-9._:-]+")
    if not action:
        raise ValidationError("action", "required")
    if _utf8_len(action) > MAX_ACTION_BYTES:
        raise ValidationError("action", f"{_utf8_len(action)} bytes, over the {MAX_ACTION_BYTES}-byte limit")
    if not _ACTION.match(action):
        raise ValidationError("action", f"{action!r} is not a lowercase dot-separated verb (^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$)")
