// The rolling 24 h count of accepted symptoms, with idempotency ids. Bounded whatever the rate, so a
// workflow can carry it through continue-as-new: the newest events are kept exactly, older ones are
// folded into per-minute buckets, and only the newest ids are remembered.

export const WINDOW_MS = 24 * 3600_000;
/** Events kept with their exact time; beyond this the oldest are folded into minute buckets. */
export const EXACT_EVENTS_CAP = 1000;
/** Idempotency ids remembered (newest first kept); redelivery beyond this many newer ids is not caught. */
export const DEDUP_IDS_CAP = 10_000;
const MINUTE_MS = 60_000;

export interface SymptomWindowState {
  /** Exact event times (epoch ms), ascending. */
  events: number[];
  /** [minute start (epoch ms), count] of folded older events, ascending. */
  buckets: [number, number][];
  /** [hash of id, received at (epoch ms)], in order of receipt. */
  ids: [string, number][];
}

export type AddOutcome = 'counted' | 'duplicate' | 'stale';

export class SymptomWindow {
  private readonly events: number[];
  private readonly buckets: [number, number][];
  private readonly ids: Map<string, number>;

  constructor(state?: SymptomWindowState) {
    this.events = [...(state?.events ?? [])];
    this.buckets = (state?.buckets ?? []).map(([t, n]) => [t, n]);
    this.ids = new Map(state?.ids ?? []);
  }

  /** Count one symptom, unless its id was seen already or it happened more than 24 h before `nowMs`. */
  add(eventTimeMs: number, id: string | undefined, nowMs: number): AddOutcome {
    this.prune(nowMs);
    const key = id === undefined ? undefined : hashId(id);
    if (key !== undefined && this.ids.has(key)) return 'duplicate';
    if (eventTimeMs <= nowMs - WINDOW_MS) return 'stale';
    if (key !== undefined) this.rememberId(key, nowMs);
    insertSorted(this.events, eventTimeMs);
    if (this.events.length > EXACT_EVENTS_CAP) this.foldOldest();
    return 'counted';
  }

  /** Whether this id has been counted (or deliberately ignored) within the dedup horizon. */
  hasSeen(id: string): boolean {
    return this.ids.has(hashId(id));
  }

  /** Symptoms whose event time lies in (now − 24 h, ∞). */
  count(nowMs: number): number {
    this.prune(nowMs);
    let n = this.events.length;
    for (const [, c] of this.buckets) n += c;
    return n;
  }

  /** When the count next drops as time passes (epoch ms), or null when it is zero. */
  nextExpiry(nowMs: number): number | null {
    this.prune(nowMs);
    const firstBucket = this.buckets[0];
    if (firstBucket) return bucketExpiry(firstBucket[0]);
    const first = this.events[0];
    return first === undefined ? null : first + WINDOW_MS;
  }

  /** Forget every counted symptom (after a promotion or an operator's clear); ids stay remembered. */
  clearCounts(): void {
    this.events.length = 0;
    this.buckets.length = 0;
  }

  toState(): SymptomWindowState {
    return { events: [...this.events], buckets: this.buckets.map(([t, n]) => [t, n]), ids: [...this.ids] };
  }

  private prune(nowMs: number): void {
    const horizon = nowMs - WINDOW_MS;
    let drop = 0;
    while (drop < this.events.length && (this.events[drop] as number) <= horizon) drop++;
    if (drop > 0) this.events.splice(0, drop);
    // A bucket stays until its last possible event leaves the window: never counted short, at most
    // one minute long.
    let dropBuckets = 0;
    while (dropBuckets < this.buckets.length && bucketExpiry(this.buckets[dropBuckets]![0]) <= nowMs)
      dropBuckets++;
    if (dropBuckets > 0) this.buckets.splice(0, dropBuckets);
    // Ids are kept as long as an event they name could still be in the window.
    for (const [key, receivedAt] of this.ids) {
      if (receivedAt > horizon - MAX_ID_GRACE_MS) break;
      this.ids.delete(key);
    }
  }

  private rememberId(key: string, nowMs: number): void {
    this.ids.set(key, nowMs);
    if (this.ids.size > DEDUP_IDS_CAP) {
      const oldest = this.ids.keys().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
  }

  private foldOldest(): void {
    const t = this.events.shift() as number;
    const minute = Math.floor(t / MINUTE_MS) * MINUTE_MS;
    // Folded events are older than every exact one, so they belong at or after the last bucket;
    // out-of-order arrivals may land in an earlier bucket, kept sorted by a scan from the end.
    let i = this.buckets.length - 1;
    while (i >= 0 && this.buckets[i]![0] > minute) i--;
    if (i >= 0 && this.buckets[i]![0] === minute) this.buckets[i]![1] += 1;
    else this.buckets.splice(i + 1, 0, [minute, 1]);
  }
}

/** Redelivered ids arrive soon after the original; keep them an hour past the window to be safe. */
const MAX_ID_GRACE_MS = 3600_000;

function bucketExpiry(minuteStart: number): number {
  return minuteStart + MINUTE_MS + WINDOW_MS;
}

function insertSorted(values: number[], value: number): void {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  values.splice(lo, 0, value);
}

/**
 * A 53-bit hash of an id (cyrb53), as base-36 text: ids up to 200 characters are remembered in about
 * 11 characters each, so the carried state stays small; collisions are negligible at 10,000 ids.
 */
export function hashId(id: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}
