/** Base class of every error the SDK throws or hands to the error handler. */
export class AuditError extends Error {
  /** A stable machine-readable code, e.g. "SPOOL_FULL". */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A local check failed in the caller: nothing was spooled or sent. `field` names the offending field. */
export class AuditValidationError extends AuditError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("INVALID_EVENT", `${field}: ${message}`);
    this.field = field;
  }
}

/** The spool (or, without a spool directory, the memory queue) has no room for the event. */
export class SpoolFullError extends AuditError {
  constructor(message: string) {
    super("SPOOL_FULL", message);
  }
}

/** Another live process (or another client in this process) owns the spool directory. */
export class SpoolLockedError extends AuditError {
  readonly pid: number;
  readonly spoolDir: string;
  constructor(spoolDir: string, pid: number, host: string, detail: string) {
    super("SPOOL_LOCKED", `spool directory ${spoolDir} is owned by pid ${pid} on ${host}: ${detail}`);
    this.pid = pid;
    this.spoolDir = spoolDir;
  }
}

/** A spool segment held a damaged record; the segment was moved to `damaged/` (never deleted). */
export class SpoolDamagedError extends AuditError {
  readonly segment: string;
  readonly movedTo: string;
  readonly offset: number;
  constructor(segment: string, movedTo: string, offset: number, detail: string) {
    super(
      "SPOOL_DAMAGED",
      `spool segment ${segment} is damaged at byte ${offset} (${detail}); moved to ${movedTo}, ` +
        `the valid events before the damage were re-spooled, records after it were not resent`,
    );
    this.segment = segment;
    this.movedTo = movedTo;
    this.offset = offset;
  }
}

/** The server rejected an event (INVALID_ARGUMENT): it went to the dead-letter file, or logDurable threw this. */
export class AuditRejectedError extends AuditError {
  /** The gRPC status name, e.g. "INVALID_ARGUMENT". */
  readonly grpcCode: string;
  /** The event id concerned. */
  readonly eventId: string;
  constructor(grpcCode: string, eventId: string, serverMessage: string) {
    super("REJECTED", `event ${eventId} rejected by the server (${grpcCode}): ${serverMessage}`);
    this.grpcCode = grpcCode;
    this.eventId = eventId;
  }
}

/** A delivery attempt failed; `retrying` says whether the SDK keeps trying (the events stay queued/spooled). */
export class DeliveryError extends AuditError {
  readonly grpcCode: string;
  readonly retrying: boolean;
  /** When retrying after a pause: how long, in milliseconds. */
  readonly retryInMs?: number;
  /** The server's `retry-after` hint, in milliseconds, when it sent one. */
  readonly retryAfterMs?: number;
  constructor(
    grpcCode: string,
    message: string,
    retrying: boolean,
    options?: { cause?: unknown; retryInMs?: number; retryAfterMs?: number },
  ) {
    super("DELIVERY_FAILED", message, options);
    this.grpcCode = grpcCode;
    this.retrying = retrying;
    this.retryInMs = options?.retryInMs;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** onFull = "drop": an event was not kept. Reported to the error handler, counted in stats().dropped. */
export class EventDroppedError extends AuditError {
  readonly eventId: string;
  constructor(eventId: string, message: string) {
    super("EVENT_DROPPED", `event ${eventId} dropped: ${message}`);
    this.eventId = eventId;
  }
}

/** The client was closed: log() and logDurable() refuse new events. */
export class ClientClosedError extends AuditError {
  constructor() {
    super("CLIENT_CLOSED", "the AuditClient is closed");
  }
}
