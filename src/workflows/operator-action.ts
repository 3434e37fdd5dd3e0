// Validation of operator requests (clear, escalate, pause, resume, acknowledge): who and why are kept
// in the decision log, so both must be present and printable.
import type { OperatorAction } from './healing-messages.js';

const MAX = 500;

export function validateOperatorAction(action: OperatorAction): void {
  if (typeof action !== 'object' || action === null) {
    throw new TypeError('expected {"by": "...", "reason": "..."}');
  }
  for (const field of ['by', 'reason'] as const) {
    const value: unknown = action[field];
    if (typeof value !== 'string' || value.trim() === '') {
      throw new TypeError(`${field}: expected a non-empty string (who asks and why are recorded)`);
    }
    if (value.length > MAX) throw new TypeError(`${field}: expected at most ${MAX} characters`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(value))
      throw new TypeError(`${field}: control characters are not allowed`);
  }
}
