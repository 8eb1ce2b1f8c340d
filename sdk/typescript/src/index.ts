export { AuditClient, defaultSpoolDir } from "./client.js";
export type { AuditClientOptions, AppendResult, ClientStats, OnFull } from "./client.js";
export { withRequestContext, currentRequestContext } from "./context.js";
export type { RequestContext } from "./context.js";
export type {
  AuditEventInput,
  ActorInput,
  ActorType,
  TargetInput,
  OutcomeInput,
  OutcomeResult,
  ContextInput,
} from "./event.js";
export type { TlsOptions } from "./transport.js";
export type { SpoolFsync } from "./spool/spool.js";
export {
  AuditError,
  AuditValidationError,
  AuditRejectedError,
  ClientClosedError,
  DeliveryError,
  EventDroppedError,
  SpoolDamagedError,
  SpoolFullError,
  SpoolLockedError,
} from "./errors.js";
