// Sizes as PyTorch, vLLM, NCCL and the kernel print them ("20.00 MiB", "79.19GiB", "512 KiB", "12 bytes"),
// normalised to MiB. Pure.

const UNIT_MIB: Record<string, number> = {
  b: 1 / (1024 * 1024),
  byte: 1 / (1024 * 1024),
  bytes: 1 / (1024 * 1024),
  kib: 1 / 1024,
  kb: 1 / 1024,
  k: 1 / 1024,
  mib: 1,
  mb: 1,
  m: 1,
  gib: 1024,
  gb: 1024,
  g: 1024,
  tib: 1024 * 1024,
  tb: 1024 * 1024,
  t: 1024 * 1024,
};

/** The size pattern the detector embeds: a number, optional space, a unit. */
export const SIZE_SOURCE = String.raw`(\d+(?:\.\d+)?)\s*(bytes?|[KMGT]i?B|B)`;

/** "1.5 GiB" → 1536; "79.19GiB" → 81090.56; "512 KiB" → 0.5; null when it is not a size. */
export function parseSizeMib(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$/.exec(text);
  if (!m) return null;
  return toMib(Number(m[1]), m[2] as string);
}

/**
 * A number with its unit → MiB (rounded to 1/100 MiB), or null for an unknown unit. Decimal units
 * (MB, GB) are read as binary: PyTorch and vLLM mean MiB/GiB when they print either.
 */
export function toMib(value: number, unit: string): number | null {
  const factor = UNIT_MIB[unit.toLowerCase()];
  if (factor === undefined || !Number.isFinite(value) || value < 0) return null;
  return roundMib(value * factor);
}

/** Bytes → MiB. */
export function bytesToMib(bytes: number): number {
  return roundMib(bytes / (1024 * 1024));
}

/** Two decimals are finer than any log prints (PyTorch prints 0.01 MiB at best). */
export function roundMib(mib: number): number {
  return Math.round(mib * 100) / 100;
}
