// The payload converter of the workers (workflow sandbox and activities). It writes exactly what the
// default converter writes, and reads what it reads — but a payload it cannot read (bytes that are not
// JSON, an encoding nobody registered, no metadata at all) becomes an {@link Undecodable} marker instead of
// an exception. The SDK decodes a signal's or a start's arguments before any handler of ours runs, so an
// exception there fails the workflow task on every retry: one hostile signal would wedge the workflow.
// Every message handler checks for the marker first and refuses it with the reason.
import { type Payload, type PayloadConverter, defaultPayloadConverter } from '@temporalio/common';

/** Key of the marker a payload that could not be read is turned into. */
export const UNDECODABLE_KEY = '__kloros_undecodable__';

export interface Undecodable {
  [UNDECODABLE_KEY]: string;
}

/** The reason a value is the marker of an unreadable payload, or null for a real value. */
export function undecodableReason(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || !(UNDECODABLE_KEY in value)) return null;
  const reason = (value as Record<string, unknown>)[UNDECODABLE_KEY];
  return typeof reason === 'string' ? reason : 'the payload could not be decoded';
}

function encodingOf(payload: Payload): string {
  const raw = payload.metadata?.encoding;
  if (!raw) return 'none';
  let text = '';
  for (const b of raw.slice(0, 64)) text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?';
  return text;
}

class TolerantPayloadConverter implements PayloadConverter {
  toPayload<T>(value: T): Payload {
    return defaultPayloadConverter.toPayload(value);
  }

  fromPayload<T>(payload: Payload): T {
    try {
      return defaultPayloadConverter.fromPayload<T>(payload);
    } catch (err) {
      const why = err instanceof Error ? err.message.slice(0, 200) : 'unreadable';
      const marker: Undecodable = {
        [UNDECODABLE_KEY]: `the payload (encoding ${encodingOf(payload)}) could not be decoded: ${why}`,
      };
      return marker as T;
    }
  }
}

export const payloadConverter: PayloadConverter = new TolerantPayloadConverter();
