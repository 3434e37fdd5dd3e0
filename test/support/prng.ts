// A small seeded pseudo-random generator for the chaos tests: the same seed gives the same schedule, so
// a failing seed can be replayed. mulberry32: 32-bit state, good enough to scatter test inputs.

export interface Prng {
  /** The seed this generator started from. */
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** A whole number in [min, max], both included. */
  int(min: number, max: number): number;
  /** true with probability p. */
  chance(p: number): boolean;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** One element of a non-empty list, by weight: [[weight, item], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T;
}

export function prng(seed: number): Prng {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new RangeError('pick from an empty list');
      return items[int(0, items.length - 1)] as T;
    },
    weighted: <T>(items: readonly (readonly [number, T])[]): T => {
      const total = items.reduce((sum, [w]) => sum + w, 0);
      let r = next() * total;
      for (const [w, item] of items) {
        r -= w;
        if (r < 0) return item;
      }
      return items[items.length - 1]![1];
    },
  };
}
