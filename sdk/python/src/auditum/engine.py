"""The delivery worker: background threads that batch spooled events into Append calls.

log() writes to the Store and wakes the dispatcher; the dispatcher takes batches (after `linger`, or
at once when a batch is full or a flush waits) and hands each to one of `max_in_flight` senders,
which fsyncs it (spool_fsync='batch'), makes the call and on its answer acks, dead-letters, or
requeues with backoff.

Senders make blocking calls rather than future(): grpc starts a polling thread for each burst of
future() calls and answers travel back through callbacks, and every thread hop takes the GIL from
log() callers, who pay for it in latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc

from . import retry, transport
from .deadletter import append_dead_letters, dead_letter_line
from .errors import AuditError, ClientClosedError, DeliveryError, EventRejectedError, EventsDroppedError, SpoolFullError
from .options import Options
from .spool import Run, Segment, Store
from .v1 import event_pb2, ingest_pb2

log = logging.getLogger("auditum")
_DUPLICATE_TRUE = b"\x18\x01"


@dataclass(frozen=True)
class Counters:
    logged: int
    delivered: int
    duplicates: int
    retried: int
    dead_lettered: int
    dropped: int
    spool_bytes: int
    pending: int


class Batch(NamedTuple):
    """What the dispatcher hands a sender: the runs of one call, each run's cached request frames (or
    None), and the sizes to fsync their segments to (spool_fsync='batch')."""

    runs: list[Run]
    cached: list[list[bytes] | None]
    sync_to: dict[Segment, int]


class WouldBlock(Exception):
    """submit(wait=False) found the spool full under on_full='block' (the async client waits in a thread)."""


def _default_error_handler(error: Exception) -> None:
    log.error("auditum: %s", error)


class Engine:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.on_error = options.on_error or _default_error_handler
        self.store = Store(options.spool_dir, options.spool_max_bytes, options.spool_fsync, self._report,
                           frame_cache_bytes=2 * options.batch_max_bytes)
        self.lock = self.store.lock
        self.wake = threading.Condition(self.lock)       # the dispatcher waits here
        self.progress = threading.Condition(self.lock)   # flush() and blocked log() wait here
        self.channel = transport.make_channel(options.url, options.tls_ca, options.tls_client_cert, options.tls_client_key,
                                              transport.channel_options(min(options.retry_max_delay, 2.0)))
        # Requests are built from encoded events; responses come with their bytes (see _acknowledged).
        self.append = self.channel.unary_unary(transport.APPEND_METHOD, request_serializer=None,
                                               response_deserializer=_parse_response)
        self.metadata = transport.call_metadata(options.api_key)
        self.retry: deque[Run] = deque()
        self.outbox: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self.sending = 0  # batches taken and not yet answered: at most max_in_flight
        # After taking a batch the dispatcher wakes again `linger` later, and sends then what was logged
        # in between: log() need not wake it for the first event of the next batch (`armed`).
        self.next_tick = 0.0
        self.armed = False
        self.awaits_sender = False  # the dispatcher waits for a sender to be free
        self.backoff_until = 0.0
        self.attempt = 0
        self.stopped: DeliveryError | None = None
        self.stopping = False
        self.closed = False
        self.flushing = 0
        self.logged = self.delivered = self.duplicates = self.retried = self.dead_lettered = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="auditum-delivery", daemon=True)
        self.senders = [threading.Thread(target=self._sender, name=f"auditum-sender-{number}", daemon=True)
                        for number in range(options.max_in_flight)]
        for thread in [self.thread, *self.senders]:
            thread.start()

    # -- called by log() -----------------------------------------------------------------------
    def submit(self, event_bytes: bytes, wait: bool = True) -> bool:
        """Spools one encoded event. False when on_full='drop' dropped it; raises SpoolFullError."""
        options, store = self.options, self.store
        size = len(event_bytes) + 9
        dropped = 0
        with self.lock:
            if self.closed:
                raise ClientClosedError("the client is closed")
            if not store.room_for(size):
                if size + 16 > options.spool_max_bytes:
                    raise SpoolFullError(f"event of {size} bytes can never fit in spool_max_bytes={options.spool_max_bytes}")
                if options.on_full == "raise":
                    raise SpoolFullError(self._full_message())
                if options.on_full == "drop":
                    self.dropped += 1
                    dropped = self.dropped
                elif not wait:
                    raise WouldBlock()
                else:
                    deadline = time.monotonic() + options.block_timeout
                    while not store.room_for(size):
                        if self.closed:
                            raise ClientClosedError("the client was closed while log() waited for room in the spool")
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise SpoolFullError(self._full_message() + f"; waited block_timeout={options.block_timeout} s")
                        self.progress.wait(remaining)
            if not dropped:
                was_empty = store.unsent_count == 0
                segment = store.append(event_bytes)
                self.logged += 1
                if (was_empty and not self.armed) or store.unsent_count == options.batch_max_events:
                    self.wake.notify()
        if dropped:
            self._report(EventsDroppedError(1, dropped))
            return False
        if options.spool_fsync == "always":
            store.sync_now(segment)
        return True

    def _full_message(self) -> str:
        where = self.store.directory or "the in-memory buffer (no spool_dir)"
        return (f"spool full: {self.store.total_bytes} bytes in {where}, spool_max_bytes={self.options.spool_max_bytes} "
                f"(the server is not keeping up or is unreachable)")

    # -- flush / close ---------------------------------------------------------------------------
    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            target = self.store.next_serial
            self.flushing += 1
            self.wake.notify()
            try:
                while self.store.min_unresolved() < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.progress.wait(remaining)
                return True
            finally:
                self.flushing -= 1

    def close(self, timeout: float | None) -> bool:
        with self.lock:
            if self.closed:
                return True
        delivered = self.flush(timeout)
        with self.lock:
            self.closed = self.stopping = True
            self.wake.notify()
            self.progress.notify_all()
        self.channel.close()  # cancels the calls still in flight: their events stay spooled
        self.thread.join()
        for _ in self.senders:
            self.outbox.put(None)
        for thread in self.senders:
            thread.join()
        with self.lock:
            left = self.store.unresolved_count
            self.store.close()
        if left and self.store.directory:
            log.info("auditum: closed with %d undelivered event(s); they stay in %s for the next client", left, self.store.directory)
        elif left:  # never silent: without a spool these are gone
            self._report(AuditError(f"closed with {left} undelivered event(s) and no spool_dir: they are lost"))
        return delivered

    def counters(self) -> Counters:
        with self.lock:
            return Counters(self.logged, self.delivered, self.duplicates, self.retried, self.dead_lettered, self.dropped,
                            self.store.data_bytes, self.store.unresolved_count)

    # -- the worker ------------------------------------------------------------------------------
    def _senders_busy(self) -> bool:
        # While calls fail, one at a time probes the server: the others would only fail alongside it.
        return self.sending >= (1 if self.attempt else self.options.max_in_flight)

    def _ready(self, now: float) -> bool:
        if self.stopped or self.stopping or self._senders_busy() or now < self.backoff_until:
            return False
        if self.retry:
            return True
        store = self.store
        if not store.unsent_count:
            return False
        if store.unsent_count >= self.options.batch_max_events or self.flushing:
            return True
        first = store.first_unsent_at
        return first is not None and now >= self._send_at(first)

    def _send_at(self, first: float) -> float:
        """When a batch whose first event was logged at `first` goes out: at most `linger` later."""
        if first <= self.next_tick:
            return min(self.next_tick, first + self.options.linger)
        return first + self.options.linger

    def _wait_time(self, now: float) -> float | None:
        if self.stopped or self.stopping or self._senders_busy():
            return None
        if now < self.backoff_until and (self.retry or self.store.unsent_count):
            return self.backoff_until - now
        if self.store.first_unsent_at is not None:
            return max(0.0, self._send_at(self.store.first_unsent_at) - now)
        if now < self.next_tick:
            return self.next_tick - now
        return None

    def _run(self) -> None:
        while True:
            with self.lock:
                while True:
                    if self.stopping:
                        return
                    now = time.monotonic()
                    if self._ready(now):
                        break
                    timeout = self._wait_time(now)
                    self.armed = timeout is not None
                    self.awaits_sender = self._senders_busy()
                    self.wake.wait(timeout)
                batch = self._take()
                self.sending += 1
                self.next_tick = now + self.options.linger
            self.outbox.put(batch)

    def _take(self) -> Batch:
        options = self.options
        runs: list[Run] = []
        taken = size = 0
        while self.retry and taken < options.batch_max_events:
            run = self.retry[0]
            cost = sum(run.segment.lengths[run.start:run.end]) + 3 * (run.end - run.start)
            if runs and (size + cost > options.batch_max_bytes or taken + run.end - run.start > options.batch_max_events):
                break
            runs.append(self.retry.popleft())
            taken += run.end - run.start
            size += cost
        cached: list[list[bytes] | None] = [None] * len(runs)  # retried events are read again
        if taken < options.batch_max_events and size < options.batch_max_bytes:
            more, frames = self.store.take(options.batch_max_events - taken, options.batch_max_bytes - size)
            runs.extend(more)
            cached.extend(frames)
        sync_to = {run.segment: run.segment.size for run in runs} if options.spool_fsync == "batch" else {}
        return Batch(runs, cached, sync_to)

    def _sender(self) -> None:
        while True:
            batch = self.outbox.get()
            if batch is None:
                return
            try:
                if self._send(batch):
                    continue
            except Exception as error:  # an I/O error on the spool: report it, pause delivery briefly
                self._report(error)
                with self.lock:
                    self.backoff_until = max(self.backoff_until, time.monotonic() + self.options.retry_initial_delay)
                    self.wake.notify()
            with self.lock:
                self._sent()

    def _sent(self) -> None:
        """A sender is free again (called with the lock held)."""
        self.sending -= 1
        if self.awaits_sender:
            self.awaits_sender = False
            self.wake.notify()

    def _send(self, batch: Batch) -> bool:
        """Sends a batch and handles the answer; True when that also freed the sender (_acknowledged)."""
        runs, cached, sync_to = batch
        try:
            if sync_to:
                self.store.sync(sync_to)
            parts: list[bytes | memoryview] = []
            for run, frames in zip(runs, cached):
                if frames is None:
                    parts.extend(self.store.frames(run))
                    time.sleep(0)  # let log() callers have the GIL between runs read from the file
                else:
                    parts.extend(frames)
            request = b"".join(parts)
        except BaseException:
            with self.lock:
                self.retry.extendleft(reversed(runs))
            raise
        try:
            response = self.append(request, timeout=self.options.call_timeout, metadata=self.metadata)
        except grpc.RpcError as error:
            if self.stopping and error.code() == grpc.StatusCode.CANCELLED:
                self._requeue(runs, None)  # close() cancelled it
            else:
                self._failed(runs, error)
            return False
        except Exception:
            self._requeue(runs, None)
            if self.stopping:  # close() closed the channel before the call started
                return False
            raise
        self._acknowledged(runs, *response)
        return True

    def _acknowledged(self, runs: list[Run], raw: bytes, response: Any) -> None:
        results = response.results
        # A result with duplicate=true holds the bytes 0x18 0x01 (field 3, true): without them, none is
        # one, and the usual response needs no loop over its results.
        duplicates = sum(1 for result in results if result.duplicate) if _DUPLICATE_TRUE in raw else 0
        with self.lock:
            self.store.ack(runs)
            self.delivered += len(results) - duplicates
            self.duplicates += duplicates
            if self.attempt:
                log.info("auditum: delivery resumed after %d failed attempt(s)", self.attempt)
            self.attempt = 0
            self.progress.notify_all()
            self._sent()  # last: when ack() raises, _sender frees the sender

    def _requeue(self, runs: list[Run], delay: float | None) -> None:
        with self.lock:
            self.retry.extendleft(reversed(runs))
            if delay is not None:
                self.backoff_until = time.monotonic() + delay
            self.wake.notify()

    def _failed(self, runs: list[Run], error: Any) -> None:
        code, message = error.code(), error.details() or ""
        events = sum(run.end - run.start for run in runs)
        if code in retry.REJECTED:
            index = retry.rejected_index(message)
            if index is None or not 0 <= index < events:
                self._dead_letter(runs, code.name, message)
                return
            bad, rest = _split(runs, index)
            self._dead_letter([bad], code.name, message)
            if rest:
                self._requeue(rest, None)
            return
        if code in retry.AUTH:
            stopped = DeliveryError(code.name, message, stopped=True)
            with self.lock:
                self.stopped = stopped
                self.retry.extendleft(reversed(runs))
                self.progress.notify_all()
            self._report(stopped)
            return
        with self.lock:
            self.attempt += 1
            self.retried += events
            attempt = self.attempt
        delay = retry.backoff(attempt, self.options.retry_initial_delay, self.options.retry_max_delay)
        hint = retry.retry_after(error)
        if hint is not None:
            delay = max(delay, hint)
        if attempt == 1:
            self._report(DeliveryError(code.name, f"{message}; retrying with backoff, events stay spooled"))
        # Attempts 1, 2, 4, 8, … at WARNING: visible through a long outage without flooding the log.
        level = logging.WARNING if attempt & (attempt - 1) == 0 else logging.DEBUG
        log.log(level, "auditum: Append failed (%s: %s), attempt %d; retrying in %.2f s", code.name, message, attempt, delay)
        self._requeue(runs, delay)

    def _dead_letter(self, runs: list[Run], code: str, message: str) -> None:
        payloads = [bytes(event) for run in runs for event in self.store.read_run(run)]
        if self.store.directory:
            append_dead_letters(self.store.directory, [dead_letter_line(code, message, payload) for payload in payloads])
        ids = [event_pb2.AuditEvent.FromString(payload).id for payload in payloads]
        with self.lock:
            self.store.ack(runs)
            self.dead_lettered += len(payloads)
            self.progress.notify_all()
        for event_id in ids:
            self._report(EventRejectedError(code, message, event_id))

    def _report(self, error: Exception) -> None:
        try:
            self.on_error(error)
        except Exception:  # a failing handler must not stop delivery
            log.exception("auditum: the on_error handler raised")


def _parse_response(raw: bytes) -> tuple[bytes, Any]:
    return raw, ingest_pb2.AppendResponse.FromString(raw)


def _split(runs: list[Run], index: int) -> tuple[Run, list[Run]]:
    """The run holding the call's event `index` alone, and the other events as runs."""
    rest: list[Run] = []
    bad = None
    for run in runs:
        count = run.end - run.start
        if bad is None and index < count:
            ordinal = run.start + index
            bad = Run(run.segment, ordinal, ordinal + 1)
            if ordinal > run.start:
                rest.append(Run(run.segment, run.start, ordinal))
            if ordinal + 1 < run.end:
                rest.append(Run(run.segment, ordinal + 1, run.end))
        else:
            rest.append(run)
        index -= count
    assert bad is not None
    return bad, rest
