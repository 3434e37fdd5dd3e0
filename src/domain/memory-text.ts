// How a KV-cache figure and a prediction error read, the same in healctl, the Web UI and an activity's basis.

/** MiB as GiB with two decimals, the way vLLM prints its KV cache ("9.61 GiB"). */
export function gibText(mb: number): string {
  return `${(mb / 1024).toFixed(2)} GiB`;
}

/** A ratio as a signed percentage with one decimal: +4.2 %, −12.0 %. */
export function signedPercent(ratio: number): string {
  return `${ratio >= 0 ? '+' : '−'}${Math.abs(ratio * 100).toFixed(1)} %`;
}
