import { AsyncLocalStorage } from "node:async_hooks";
import type { ActorInput } from "./event.js";

/** Ambient request context, set once per request (e.g. by middleware) and read by every log() inside it. */
export interface RequestContext {
  requestId?: string;
  correlationId?: string;
  sessionId?: string;
  sourceIp?: string;
  userAgent?: string;
  service?: string;
  actor?: ActorInput;
}

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` with `context` as the ambient request context; nested calls merge with the outer context (inner
 * values win). Returns what `fn` returns (a promise stays a promise), so `await withRequestContext(ctx, async () => …)`
 * and Express's `withRequestContext(ctx, next)` both work.
 */
export function withRequestContext<T>(context: RequestContext, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run(outer ? { ...outer, ...stripUndefined(context) } : { ...context }, fn);
}

/** The ambient request context of the current async call chain, if any. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

function stripUndefined(context: RequestContext): RequestContext {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context)) if (v !== undefined) out[k] = v;
  return out as RequestContext;
}
