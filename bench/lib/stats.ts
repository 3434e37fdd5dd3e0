// Latency figures from raw samples: percentiles by the nearest-rank method, so p99 of 100 samples is the
// 99th smallest, not an interpolation between two measured values.

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function summarise(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight, timing each call; returns the
 * per-call latencies (ms) and the wall time of the whole batch. `onProgress` fires every `every` calls.
 */
export async function timedPool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
  onProgress?: (done: number) => void,
  every = Math.max(1, Math.floor(count / 10)),
): Promise<{ latenciesMs: number[]; wallMs: number }> {
  const latenciesMs = new Array<number>(count);
  let next = 0;
  let done = 0;
  let failure: { error: unknown } | null = null;
  const started = performance.now();
  const lane = async () => {
    while (failure === null) {
      const i = next++;
      if (i >= count) return;
      const t0 = performance.now();
      try {
        await task(i);
      } catch (error) {
        // Stop taking new work but let the other lanes finish theirs: nothing is left in flight.
        failure ??= { error };
        return;
      }
      latenciesMs[i] = performance.now() - t0;
      done++;
      if (onProgress && done % every === 0) onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  if (failure !== null) throw (failure as { error: unknown }).error;
  return { latenciesMs, wallMs: performance.now() - started };
}
