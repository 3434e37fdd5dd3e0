// Number formatting as vLLM (Python) and PyTorch (C++) print it, so that the simulator's messages read
// exactly like the real ones and parse with the same regular expressions.

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Python's str(float): 0.9 → "0.9", 1 → "1.0", 71.68 → "71.68". */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const s = String(x);
  return Number.isInteger(x) && !s.includes('e') ? `${s}.0` : s;
}

/** Python's str(round(x, 2)), as vLLM's start-up check prints GiB values. */
export function pyRound2(x: number): string {
  return pyFloat(Math.round(x * 100) / 100);
}

/** Python's f"{x:.Nf}" (and "%.Nf"). */
export function fixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  return s === `-${(0).toFixed(digits)}` ? (0).toFixed(digits) : s;
}

/** Python's f"{n:,}": 101104 → "101,104". */
export function thousands(n: number): string {
  const sign = n < 0 ? '-' : '';
  const digits = String(Math.trunc(Math.abs(n)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** MiB → "12.34" GiB with two decimals (vLLM's "%.2f GiB"). */
export function gib2(mb: number): string {
  return fixed(mb / 1024, 2);
}

/** PyTorch's CUDACachingAllocator format_size (bytes → "2.00 GiB", "512.00 MiB", "3.00 KiB", "12 bytes"). */
export function torchSize(bytes: number): string {
  const b = Math.max(0, Math.round(bytes));
  if (b <= 1024) return `${b} bytes`;
  if (b <= MiB) return `${fixed(b / 1024, 2)} KiB`;
  if (b <= GiB) return `${fixed(b / MiB, 2)} MiB`;
  return `${fixed(b / GiB, 2)} GiB`;
}

/** Parses "30s", "500ms", "2m", "1h" or plain seconds ("30") into milliseconds; null when malformed. */
export function parseDurationMs(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) return null;
  const value = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(value * factor);
}
