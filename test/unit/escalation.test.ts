// The escalation flag's lapse (issue 13, point 5): TTL after the last symptom, but never before the window
// the escalation is owed has closed. Examples at the defaults, then the rule over thousands of random cases.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { flagExpiresAt, owedWindow } from '../../src/domain/escalation.js';
import { currentWindow, nextOpening, parseMaintenanceWindow } from '../../src/domain/maintenance-window.js';
import { prng } from '../support/prng.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const window = parseMaintenanceWindow('03:00-07:00', 'UTC');
const day = (h: number, m = 0) => Date.UTC(2026, 11, 1, h, m);
const ttl4h = { forcedAt: null, ttlSeconds: 14_400 };

describe('flagExpiresAt at the defaults (TTL 4 h, window 03:00-07:00 UTC)', () => {
  test('armed at 14:00 by OOMs since 10:00: lapses when tonight’s window closes, 07:00, not at 18:00', () => {
    const at = flagExpiresAt({ ...ttl4h, armedAt: day(14), lastSymptomAt: day(14) }, window);
    assert.equal(at, day(7) + DAY);
  });
  test('a symptom during the window keeps it 4 h past that symptom', () => {
    const at = flagExpiresAt({ ...ttl4h, armedAt: day(14), lastSymptomAt: day(6) + DAY }, window);
    assert.equal(at, day(10) + DAY);
  });
  test('armed inside a window (04:00): owed the next whole window, the one of tomorrow night', () => {
    assert.equal(owedWindow(window, day(4)).opensAt, day(3) + DAY);
    assert.equal(owedWindow(window, day(3)).opensAt, day(3), 'armed exactly at the opening: that window');
  });
  test('TTL 0 never lapses; without a window (alert-only kinds) it is the TTL alone', () => {
    assert.equal(
      flagExpiresAt({ forcedAt: null, ttlSeconds: 0, armedAt: day(14), lastSymptomAt: day(14) }, window),
      null,
    );
    assert.equal(flagExpiresAt({ ...ttl4h, armedAt: day(14), lastSymptomAt: day(14) }, null), day(18));
    assert.equal(flagExpiresAt({ ...ttl4h, armedAt: null, lastSymptomAt: day(14) }, window), null);
  });
});

test('property: never before TTL after the newest of symptom/force/arming, never before the owed window closes, and no later than both', () => {
  const r = prng(20261201);
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe'];
  for (let i = 0; i < 5000; i++) {
    const start = r.int(0, 23 * 60);
    const length = r.int(1, 12 * 60);
    const end = (start + length) % (24 * 60);
    const hhmm = (m: number) =>
      `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    const w = parseMaintenanceWindow(`${hhmm(start)}-${hhmm(end)}`, r.pick(zones));
    const armedAt = Date.UTC(2026, r.int(0, 11), r.int(1, 28), r.int(0, 23), r.int(0, 59));
    const lastSymptomAt = armedAt - r.int(0, 20) * HOUR;
    const forcedAt = r.chance(0.3) ? armedAt + r.int(0, 10) * HOUR : null;
    const ttlSeconds = r.int(1, 48) * 3600;
    const expires = flagExpiresAt({ armedAt, lastSymptomAt, forcedAt, ttlSeconds }, w)!;
    const ttlEnd = Math.max(armedAt, lastSymptomAt, forcedAt ?? 0) + ttlSeconds * 1000;
    const owed = owedWindow(w, armedAt);
    assert.ok(owed.opensAt >= armedAt, 'the owed window opens at or after the arming');
    assert.ok(currentWindow(w, owed.opensAt) !== null, 'and is a real occurrence');
    assert.ok(owed.opensAt <= nextOpening(w, armedAt).opensAt, 'and the first one');
    assert.ok(expires >= ttlEnd && expires >= owed.closesAt, `seed case ${i}`);
    assert.equal(expires, Math.max(ttlEnd, owed.closesAt));
  }
});
