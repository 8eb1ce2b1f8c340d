"""The delivery worker: a background thread that batches spooled events into Append calls.

log() writes to the Store and wakes the worker; the worker takes batches (after `linger`, or at once
when a batch is full or a flush waits), fsyncs them (spool_fsync='batch'), sends up to
`max_in_flight` calls, and on each answer acks, dead-letters, or requeues with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import grpc

from . import retry, transport
from .deadletter import append_dead_letters, dead_letter_line
from .errors import AuditError, ClientClosedError, DeliveryError, EventRejectedError, EventsDroppedError, SpoolFullError
from .options import Options
from .spool import Run, Store
from .v1 import event_pb2, ingest_pb2

log = logging.getLogger("auditum")


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


class WouldBlock(Exception):
    """submit(wait=False) found the spool full under on_full='block' (the async client waits in a thread)."""


def _default_error_handler(error: Exception) -> None:
    log.error("auditum: %s", error)


class Engine:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.on_error = options.on_error or _default_error_handler
        self.store = Store(options.spool_dir, options.spool_max_bytes, options.spool_fsync, self._report)
        self.lock = self.store.lock
        self.wake = threading.Condition(self.lock)       # the worker waits here
        self.progress = threading.Condition(self.lock)   # flush() and blocked log() wait here
        self.channel = transport.make_channel(options.url, options.tls_ca, options.tls_client_cert, options.tls_client_key,
                                              transport.channel_options(min(options.retry_max_delay, 2.0)))
        self.append = self.channel.unary_unary(transport.APPEND_METHOD, request_serializer=None,
                                               response_deserializer=ingest_pb2.AppendResponse.FromString)
        self.metadata = transport.call_metadata(options.api_key)
        self.retry: deque[Run] = deque()
        self.completions: deque[tuple[list[Run], Any]] = deque()
        self.inflight: set[Any] = set()
        self.backoff_until = 0.0
        self.attempt = 0
        self.stopped: DeliveryError | None = None
        self.stopping = False
        self.closed = False
        self.flushing = 0
        self.logged = self.delivered = self.duplicates = self.retried = self.dead_lettered = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="auditum-delivery", daemon=True)
        self.thread.start()

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
                if was_empty or store.unsent_count == options.batch_max_events:
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
            pending = [future for future in self.inflight if future is not None]
            self.wake.notify()
            self.progress.notify_all()
        for future in pending:
            future.cancel()
        self.thread.join()
        with self.lock:
            left = self.store.unresolved_count
            self.store.close()
        self.channel.close()
        if left and self.store.directory:
            log.info("auditum: closed with %d undelivered event(s); they stay in %s for the next client", left, self.store.directory)
        elif left:  # never silent: without a spool these are gone
            self._report(AuditError(f"closed with {left} undelivered event(s) and no spool_dir: they are lost"))
        return delivered

    def counters(self) -> Counters:
        with self.lock:
            return Counters(self.logged, self.delivered, self.duplicates, self.retried, self.dead_lettered, self.dropped,
                            self.store.total_bytes, self.store.unresolved_count)

    # -- the worker ------------------------------------------------------------------------------
    def _ready(self, now: float) -> bool:
        if self.stopped or self.stopping or len(self.inflight) >= self.options.max_in_flight or now < self.backoff_until:
            return False
        if self.retry:
            return True
        store = self.store
        if not store.unsent_count:
            return False
        if store.unsent_count >= self.options.batch_max_events or self.flushing:
            return True
        return store.first_unsent_at is not None and now - store.first_unsent_at >= self.options.linger

    def _wait_time(self, now: float) -> float | None:
        if self.stopped or self.stopping or len(self.inflight) >= self.options.max_in_flight:
            return None
        if now < self.backoff_until and (self.retry or self.store.unsent_count):
            return self.backoff_until - now
        if self.store.first_unsent_at is not None:
            return max(0.0, self.store.first_unsent_at + self.options.linger - now)
        return None

    def _run(self) -> None:
        while True:
            with self.lock:
                while True:
                    if self.stopping and not self.inflight and not self.completions:
                        return
                    now = time.monotonic()
                    if self.completions or self._ready(now):
                        break
                    self.wake.wait(self._wait_time(now))
                completions = list(self.completions)
                self.completions.clear()
                batch = None if completions else self._take(now)
            try:
                for items, future in completions:
                    self._complete(items, future)
                if batch:
                    self._send(batch)
            except Exception as error:  # an I/O error on the spool: report, keep the worker alive
                self._report(error)
                time.sleep(self.options.retry_initial_delay)

    def _take(self, now: float) -> list[Run]:
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
        if taken < options.batch_max_events and size < options.batch_max_bytes:
            runs.extend(self.store.take(options.batch_max_events - taken, options.batch_max_bytes - size))
        self.inflight.add(None)  # a placeholder until the call starts, so close() waits for it
        return runs

    def _send(self, runs: list[Run]) -> None:
        try:
            if self.options.spool_fsync == "batch":
                self.store.sync({run.segment for run in runs})
            parts: list[bytes | memoryview] = []
            for run in runs:
                for event in self.store.read_run(run):
                    parts.append(_field_header(len(event)))
                    parts.append(event)
                time.sleep(0)  # let log() callers have the GIL between runs
            future = self.append.future(b"".join(parts), timeout=self.options.call_timeout, metadata=self.metadata)
        except BaseException:
            with self.lock:
                self.inflight.discard(None)
                self.retry.extendleft(reversed(runs))
            raise
        with self.lock:
            self.inflight.discard(None)
            self.inflight.add(future)
            stopping = self.stopping
        future.add_done_callback(lambda done: self._done(runs, done))
        if stopping:
            future.cancel()

    def _done(self, runs: list[Run], future: Any) -> None:
        with self.lock:
            self.completions.append((runs, future))
            self.wake.notify()

    def _complete(self, runs: list[Run], future: Any) -> None:
        with self.lock:
            self.inflight.discard(future)
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            self._requeue(runs, None)
            return
        except grpc.RpcError as error:
            self._failed(runs, error)
            return
        results = response.results
        duplicates = sum(1 for result in results if result.duplicate)
        with self.lock:
            self.store.ack(runs)
            self.delivered += len(results) - duplicates
            self.duplicates += duplicates
            if self.attempt:
                log.info("auditum: delivery resumed after %d failed attempt(s)", self.attempt)
            self.attempt = 0
            self.progress.notify_all()

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


def _field_header(size: int) -> bytes:
    """Tag of AppendRequest.events (field 1, length-delimited) and the length varint."""
    if size < 0x80:
        return bytes((0x0A, size))
    if size < 0x4000:
        return bytes((0x0A, size & 0x7F | 0x80, size >> 7))
    header = bytearray(b"\x0a")
    while size > 0x7F:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header)


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
