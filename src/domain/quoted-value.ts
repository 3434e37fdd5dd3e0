// How an error quotes a bad value it was given: JSON (so control characters and quotes show as escapes),
// whole when short, else its start and its length — a 10 kB argument or a 200 kB setting stays one line.

export function quotedValue(value: string, max: number): string {
  return value.length <= max
    ? JSON.stringify(value)
    : `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}
