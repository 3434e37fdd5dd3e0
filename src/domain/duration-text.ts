// Human-readable durations for decision reasons ("budget 12 s left < predicted 41 s",
// "window opens 03:00 Europe/Berlin, in 5 h 12 m"). Pure and deterministic: safe in workflow code.
//
// Rules:
// - The value is rounded DOWN to whole seconds; negative values and NaN read as "0 s".
// - At most two units are shown, the largest first: "41 s", "5 m 3 s", "5 h 12 m", "2 d 3 h".
//   Smaller units are dropped once a larger one leads (no seconds once hours are shown, no minutes
//   once days are shown). A zero second unit is omitted: "5 m", "2 h", "3 d".
// - Positive infinity reads as "∞" (e.g. a flag that never lapses).

const SECOND = 1;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function pair(big: number, bigUnit: string, small: number, smallUnit: string): string {
  return small > 0 ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`;
}

/** Formats a duration given in milliseconds, e.g. `"0 s"`, `"41 s"`, `"5 m 3 s"`, `"5 h 12 m"`, `"2 d 3 h"`. */
export function formatDuration(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return '∞';
  if (!(ms > 0)) return '0 s';
  const total = Math.floor(ms / 1000);
  if (total < MINUTE) return `${total} s`;
  if (total < HOUR) return pair(Math.floor(total / MINUTE), 'm', total % MINUTE, 's');
  if (total < DAY) return pair(Math.floor(total / HOUR), 'h', Math.floor((total % HOUR) / MINUTE), 'm');
  return pair(Math.floor(total / DAY), 'd', Math.floor((total % DAY) / HOUR), 'h');
}
