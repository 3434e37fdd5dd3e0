// Durations in settings: "90s", "15m", "4h", "1h30m", "2d" (Go's time.ParseDuration, as the Temporal CLI
// and Prometheus write them, plus days), or a bare number in the setting's historical unit, so that
// existing environment files keep their meaning.

const UNIT_SECONDS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * Seconds in `text`, or null when it is not a duration. A bare number is in `bareUnit`; decimals only
 * where `bareDecimals` allows them for a bare number (a duration with units may always have them).
 */
export function parseDurationSeconds(text: string, bareUnit: 's' | 'h', bareDecimals = false): number | null {
  const t = text.trim().toLowerCase();
  if (/^\d+$/.test(t) || (bareDecimals && /^\d+\.\d+$/.test(t))) return Number(t) * UNIT_SECONDS[bareUnit]!;
  if (!WHOLE.test(t)) return null;
  let seconds = 0;
  for (const m of t.matchAll(PART)) seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return Number.isFinite(seconds) ? seconds : null;
}
