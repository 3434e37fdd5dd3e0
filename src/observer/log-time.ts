// Event times from the headers log lines carry: ISO 8601 (docker logs --timestamps, journalctl -o
// short-iso, cloud log shippers), vLLM's "INFO 11-28 03:04:05" (no year, local time) and syslog's
// "Nov 28 03:04:05" (journalctl's default). Pure: the year comes from a reference time.

const ISO = /^\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}))/;
const VLLM =
  /(?:^|[\s)])(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\b/;
const SYSLOG =
  /^\s*(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\b/;
// dmesg -T / --ctime: "[Wed Jul 31 23:14:18 2024]" (local time, with the year).
const CTIME =
  /^\s*\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})\]/;
// The kernel's own "[  219.470994]" (seconds since boot), at the start of dmesg lines or after a syslog header.
const KERNEL_CLOCK = /(?:^|kernel: )\s*\[\s*(\d+\.\d+)\]/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_MS = 86_400_000;

/** Epoch ms of the line's own timestamp, or null when it carries none. `referenceMs` supplies the year. */
export function parseLogTime(text: string, referenceMs: number): number | null {
  let m = ISO.exec(text);
  if (m) {
    // "+0000" (journalctl short-iso) → "+00:00" for Date.parse; "," decimal → ".".
    const iso = (m[1] as string)
      .replace(' ', 'T')
      .replace(',', '.')
      .replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
    // Nanosecond fractions (docker) are more than Date.parse takes: keep milliseconds.
    const ms = Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(ms) ? null : ms;
  }
  m = VLLM.exec(text);
  if (m) {
    const [, mo, d, h, mi, s, frac] = m;
    return withYear(referenceMs, (year) =>
      new Date(
        year,
        Number(mo) - 1,
        Number(d),
        Number(h),
        Number(mi),
        Number(s),
        Number((frac ?? '0').padEnd(3, '0')),
      ).getTime(),
    );
  }
  m = CTIME.exec(text);
  if (m) {
    const [, mon, d, h, mi, s, year] = m;
    const t = new Date(
      Number(year),
      MONTHS.indexOf(mon as string),
      Number(d),
      Number(h),
      Number(mi),
      Number(s),
    );
    return Number.isNaN(t.getTime()) ? null : t.getTime();
  }
  m = SYSLOG.exec(text);
  if (m) {
    const [, mon, d, h, mi, s] = m;
    return withYear(referenceMs, (year) =>
      new Date(year, MONTHS.indexOf(mon as string), Number(d), Number(h), Number(mi), Number(s)).getTime(),
    );
  }
  return null;
}

/** A date printed without its year is this year's, or last year's when that would put it in the future. */
function withYear(referenceMs: number, at: (year: number) => number): number | null {
  const year = new Date(referenceMs).getFullYear();
  const t = at(year);
  if (Number.isNaN(t)) return null;
  return t > referenceMs + DAY_MS ? at(year - 1) : t;
}

/**
 * The kernel's seconds-since-boot stamp of a driver line, in ms, or null. Only a clock between lines of
 * one boot: it tells two faults apart, it is not an event time.
 */
export function kernelClockMs(text: string): number | null {
  const m = KERNEL_CLOCK.exec(text);
  return m ? Math.round(Number(m[1]) * 1000) : null;
}
