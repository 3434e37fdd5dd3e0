// A token bucket: `capacity` tokens at once, refilled at `perSecond`. Pure (the caller passes the clock),
// so it is tested without waiting.

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    nowMs: number,
  ) {
    if (!(capacity >= 1) || !(perSecond > 0)) {
      throw new RangeError(
        `token bucket needs capacity ≥ 1 and a refill rate > 0 (got ${capacity}, ${perSecond})`,
      );
    }
    this.tokens = capacity;
    this.at = nowMs;
  }

  /** Takes `n` tokens (all or none), or says how long until `n` are there (Infinity: more than it holds). */
  take(nowMs: number, n = 1): TakeResult {
    const elapsed = Math.max(0, nowMs - this.at);
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.perSecond) / 1000);
    this.at = Math.max(this.at, nowMs);
    if (this.tokens >= n) {
      this.tokens -= n;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: this.waitMs(n) };
  }

  /** How long until `n` tokens are there, as of the last take. */
  waitMs(n: number): number {
    if (n > this.capacity) return Infinity;
    return Math.max(0, Math.ceil(((n - this.tokens) * 1000) / this.perSecond));
  }
}
