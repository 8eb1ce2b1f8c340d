/** Exponential backoff with jitter between 100 ms and 30 s (SDK.md); a server's retry-after hint wins. */
export class Backoff {
  private failures = 0;
  constructor(
    private readonly minMs = 100,
    private readonly maxMs = 30_000,
  ) {}

  next(retryAfterMs?: number): number {
    this.failures++;
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.failures - 1, 20));
    // "Equal jitter": at least half the step, so retries spread out without collapsing to zero.
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    // The hint is the server's to give: honoured as is (bounded at 5 minutes against a nonsense value).
    if (retryAfterMs !== undefined) return Math.max(this.minMs, Math.min(retryAfterMs, 300_000));
    return Math.max(this.minMs, Math.min(delay, this.maxMs));
  }

  reset(): void {
    this.failures = 0;
  }
}
