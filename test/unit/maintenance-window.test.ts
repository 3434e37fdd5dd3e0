import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  type MaintenanceWindow,
  type WindowOccurrence,
  currentWindow,
  describeNextWindow,
  formatLocalTime,
  isValidTimeZone,
  nextOpening,
  parseMaintenanceWindow,
  upcomingWindow,
} from '../../src/domain/maintenance-window.js';

const H = 3_600_000;
const M = 60_000;

/** An instant from an ISO string with an explicit offset. */
function at(iso: string): number {
  const ms = Date.parse(iso);
  assert.ok(Number.isFinite(ms), `bad test instant ${iso}`);
  return ms;
}

function occ(opens: string, closes: string): WindowOccurrence {
  return { opensAt: at(opens), closesAt: at(closes) };
}

const EXPECTED = 'expected HH:MM-HH:MM in 24-hour time, e.g. 03:00-07:00';

describe('parseMaintenanceWindow', () => {
  test('parses HH:MM-HH:MM into minutes after local midnight, normalising the text', () => {
    assert.deepEqual(parseMaintenanceWindow('03:00-07:00', 'Europe/Berlin'), {
      text: '03:00-07:00',
      startMinute: 180,
      endMinute: 420,
      timeZone: 'Europe/Berlin',
    });
    assert.deepEqual(parseMaintenanceWindow('  3:05 - 7:45\n', ' UTC '), {
      text: '03:05-07:45',
      startMinute: 185,
      endMinute: 465,
      timeZone: 'UTC',
    });
    assert.deepEqual(parseMaintenanceWindow('22:00-02:00', 'Asia/Kolkata'), {
      text: '22:00-02:00',
      startMinute: 1320,
      endMinute: 120,
      timeZone: 'Asia/Kolkata',
    });
    assert.deepEqual(parseMaintenanceWindow('23:59-00:00', 'UTC'), {
      text: '23:59-00:00',
      startMinute: 1439,
      endMinute: 0,
      timeZone: 'UTC',
    });
  });

  const bad: [string, string][] = [
    ['25:00-07:00', `"25:00-07:00": hour 25 is out of range 00-23; ${EXPECTED}`],
    ['03:00-99:00', `"03:00-99:00": hour 99 is out of range 00-23; ${EXPECTED}`],
    ['22:00-24:00', `"22:00-24:00": hour 24 is out of range 00-23 (write midnight as 00:00); ${EXPECTED}`],
    ['03:60-07:00', `"03:60-07:00": minute 60 is out of range 00-59; ${EXPECTED}`],
    ['03:00-07:75', `"03:00-07:75": minute 75 is out of range 00-59; ${EXPECTED}`],
    ['03:00-03:00', `"03:00-03:00": start and end are both 03:00, so the window has no length; ${EXPECTED}`],
    ['3:00-03:00', `"3:00-03:00": start and end are both 03:00, so the window has no length; ${EXPECTED}`],
    ['3-7', `"3-7" is not a maintenance window; ${EXPECTED}`],
    ['0300-0700', `"0300-0700" is not a maintenance window; ${EXPECTED}`],
    ['03:0-07:00', `"03:0-07:00" is not a maintenance window; ${EXPECTED}`],
    ['123:00-07:00', `"123:00-07:00" is not a maintenance window; ${EXPECTED}`],
    ['03:00-07:00x', `"03:00-07:00x" is not a maintenance window; ${EXPECTED}`],
    ['03:00', `"03:00" is not a maintenance window; ${EXPECTED}`],
    ['03:00–07:00', `"03:00–07:00" is not a maintenance window; ${EXPECTED}`], // en dash
    ['', `maintenance window is empty; ${EXPECTED}`],
    ['   ', `maintenance window is empty; ${EXPECTED}`],
  ];
  for (const [text, message] of bad) {
    test(`rejects ${JSON.stringify(text)} with a message saying what is wrong`, () => {
      assert.throws(() => parseMaintenanceWindow(text, 'UTC'), { message });
    });
  }

  test('rejects an unknown zone, naming it and asking for an IANA name', () => {
    assert.throws(() => parseMaintenanceWindow('03:00-07:00', 'Europe/Berln'), {
      message:
        '"Europe/Berln" is not a known time zone; expected an IANA time zone name such as Europe/Berlin, America/New_York or UTC',
    });
    assert.throws(() => parseMaintenanceWindow('03:00-07:00', ''), {
      message:
        'time zone is empty; expected an IANA time zone name such as Europe/Berlin, America/New_York or UTC',
    });
  });

  test('checks the window text before the zone', () => {
    assert.throws(() => parseMaintenanceWindow('25:00-07:00', 'Nowhere/Special'), /hour 25 is out of range/);
  });
});

describe('isValidTimeZone', () => {
  test('accepts IANA zones and UTC', () => {
    for (const zone of ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'UTC', 'Australia/Lord_Howe']) {
      assert.equal(isValidTimeZone(zone), true, zone);
    }
  });
  test('rejects unknown and empty names', () => {
    for (const zone of ['Europe/Berln', 'Mars/Olympus_Mons', '', '   ', 'CEST+2']) {
      assert.equal(isValidTimeZone(zone), false, JSON.stringify(zone));
    }
  });
});

describe('formatLocalTime', () => {
  test('shows HH:MM on the zone wall clock', () => {
    assert.equal(formatLocalTime(at('2026-03-29T01:00:00Z'), 'Europe/Berlin'), '03:00');
    assert.equal(formatLocalTime(at('2026-03-29T00:59:59.999Z'), 'Europe/Berlin'), '01:59');
    assert.equal(formatLocalTime(at('2026-06-14T21:30:00Z'), 'Asia/Kolkata'), '03:00');
    assert.equal(formatLocalTime(at('2026-06-14T21:29:00Z'), 'Asia/Kolkata'), '02:59');
    assert.equal(formatLocalTime(at('2026-07-01T07:05:00Z'), 'America/New_York'), '03:05');
    assert.equal(formatLocalTime(at('2026-01-01T09:07:00Z'), 'UTC'), '09:07');
  });
  test('shows midnight as 00:00, never 24:00', () => {
    assert.equal(formatLocalTime(at('2026-06-14T22:00:00Z'), 'Europe/Berlin'), '00:00');
    assert.equal(formatLocalTime(at('2026-01-01T00:00:00Z'), 'UTC'), '00:00');
  });
});

describe('Europe/Berlin 03:00-07:00', () => {
  const w = parseMaintenanceWindow('03:00-07:00', 'Europe/Berlin');

  test('normal summer day: from 23:00 CEST the window opens exactly 4 h later', () => {
    const now = at('2026-06-14T23:00:00+02:00');
    assert.equal(currentWindow(w, now), null);
    assert.deepEqual(nextOpening(w, now), occ('2026-06-15T01:00:00Z', '2026-06-15T05:00:00Z'));
    assert.equal(nextOpening(w, now).opensAt - now, 4 * H);
    assert.equal(describeNextWindow(w, now), 'window opens 03:00 Europe/Berlin, in 4 h');
  });

  test('normal winter day: 03:00 CET is 02:00Z', () => {
    const now = at('2026-01-14T23:00:00+01:00');
    assert.deepEqual(nextOpening(w, now), occ('2026-01-15T02:00:00Z', '2026-01-15T06:00:00Z'));
  });

  test('open exactly at opening, closed exactly at closing', () => {
    const o = occ('2026-06-15T01:00:00Z', '2026-06-15T05:00:00Z');
    assert.equal(currentWindow(w, o.opensAt - 1), null);
    assert.deepEqual(currentWindow(w, o.opensAt), o);
    assert.deepEqual(currentWindow(w, o.closesAt - 1), o);
    assert.equal(currentWindow(w, o.closesAt), null);
    // nextOpening is strictly after now: at the opening instant it is the next day's occurrence.
    assert.deepEqual(nextOpening(w, o.opensAt - 1), o);
    assert.deepEqual(nextOpening(w, o.opensAt), occ('2026-06-16T01:00:00Z', '2026-06-16T05:00:00Z'));
    assert.deepEqual(nextOpening(w, o.closesAt), occ('2026-06-16T01:00:00Z', '2026-06-16T05:00:00Z'));
  });

  test('upcomingWindow is the open occurrence, else the next one', () => {
    const o = occ('2026-06-15T01:00:00Z', '2026-06-15T05:00:00Z');
    assert.deepEqual(upcomingWindow(w, o.opensAt + H), o);
    assert.deepEqual(upcomingWindow(w, o.opensAt - H), o);
    assert.deepEqual(upcomingWindow(w, o.closesAt), occ('2026-06-16T01:00:00Z', '2026-06-16T05:00:00Z'));
  });

  test('describes an open window with its closing time and what is left', () => {
    const now = at('2026-06-15T03:50:00+02:00');
    assert.equal(
      describeNextWindow(w, now),
      'window 03:00-07:00 Europe/Berlin is open until 07:00 (3 h 10 m left)',
    );
    assert.equal(
      describeNextWindow(w, at('2026-06-15T06:59:59.500+02:00')),
      'window 03:00-07:00 Europe/Berlin is open until 07:00 (0 s left)',
    );
    assert.equal(
      describeNextWindow(w, at('2026-06-14T21:48:00+02:00')),
      'window opens 03:00 Europe/Berlin, in 5 h 12 m',
    );
  });

  test('spring forward (2026-03-29): 03:00 CEST is 01:00Z, only 3 h after 23:00 CET', () => {
    const now = at('2026-03-28T23:00:00+01:00');
    assert.deepEqual(nextOpening(w, now), occ('2026-03-29T01:00:00Z', '2026-03-29T05:00:00Z'));
    assert.equal(describeNextWindow(w, now), 'window opens 03:00 Europe/Berlin, in 3 h');
    // and the next day is back to 24 h between openings
    assert.deepEqual(
      nextOpening(w, at('2026-03-29T01:00:00Z')),
      occ('2026-03-30T01:00:00Z', '2026-03-30T05:00:00Z'),
    );
  });

  test('fall back (2026-10-25): 03:00 CET is 02:00Z, 5 h after 23:00 CEST', () => {
    const now = at('2026-10-24T23:00:00+02:00');
    assert.deepEqual(nextOpening(w, now), occ('2026-10-25T02:00:00Z', '2026-10-25T06:00:00Z'));
    assert.equal(describeNextWindow(w, now), 'window opens 03:00 Europe/Berlin, in 5 h');
    // the day before still opens at 03:00 CEST
    assert.deepEqual(
      nextOpening(w, at('2026-10-23T23:00:00+02:00')),
      occ('2026-10-24T01:00:00Z', '2026-10-24T05:00:00Z'),
    );
  });
});

describe('DST edge times in Europe/Berlin', () => {
  test('a nonexistent opening (02:30 on spring-forward day) opens at the transition, 03:00 CEST', () => {
    const w = parseMaintenanceWindow('02:30-07:00', 'Europe/Berlin');
    const o = nextOpening(w, at('2026-03-28T12:00:00Z'));
    assert.deepEqual(o, occ('2026-03-29T01:00:00Z', '2026-03-29T05:00:00Z'));
    assert.equal(o.closesAt - o.opensAt, 4 * H); // nominally 4 h 30 m
    assert.equal(formatLocalTime(o.opensAt, 'Europe/Berlin'), '03:00');
    assert.equal(currentWindow(w, at('2026-03-29T00:59:59Z')), null);
    assert.deepEqual(currentWindow(w, at('2026-03-29T01:00:00Z')), o);
  });

  test('a nonexistent closing (02:30) closes at the transition', () => {
    const w = parseMaintenanceWindow('01:30-02:30', 'Europe/Berlin');
    const o = nextOpening(w, at('2026-03-28T12:00:00Z'));
    assert.deepEqual(o, occ('2026-03-29T00:30:00Z', '2026-03-29T01:00:00Z'));
    assert.equal(
      describeNextWindow(w, at('2026-03-29T00:40:00Z')),
      'window 01:30-02:30 Europe/Berlin is open until 03:00 (20 m left)',
    );
  });

  test('a window wholly inside the gap does not happen that day', () => {
    const w = parseMaintenanceWindow('02:00-02:59', 'Europe/Berlin');
    const now = at('2026-03-28T12:00:00Z');
    assert.deepEqual(nextOpening(w, now), occ('2026-03-30T00:00:00Z', '2026-03-30T00:59:00Z'));
    assert.equal(currentWindow(w, at('2026-03-29T01:00:00Z')), null);
  });

  test('an ambiguous opening (02:30 on fall-back day) uses its first occurrence, CEST', () => {
    const w = parseMaintenanceWindow('02:30-07:00', 'Europe/Berlin');
    const o = nextOpening(w, at('2026-10-24T12:00:00Z'));
    assert.deepEqual(o, occ('2026-10-25T00:30:00Z', '2026-10-25T06:00:00Z'));
    assert.equal(o.closesAt - o.opensAt, 5 * H + 30 * M); // nominally 4 h 30 m
  });

  test('an ambiguous closing (02:30 on fall-back day) uses its first occurrence, CEST', () => {
    const w = parseMaintenanceWindow('01:00-02:30', 'Europe/Berlin');
    const o = nextOpening(w, at('2026-10-24T12:00:00Z'));
    assert.deepEqual(o, occ('2026-10-24T23:00:00Z', '2026-10-25T00:30:00Z'));
    // in the repeated 02:30-03:00 hour (second pass, CET) the window is already closed
    assert.equal(currentWindow(w, at('2026-10-25T01:45:00Z')), null);
  });

  test('a window crossing midnight into the fall-back night gets the extra hour', () => {
    const w = parseMaintenanceWindow('22:00-04:00', 'Europe/Berlin');
    const o = nextOpening(w, at('2026-10-24T12:00:00Z'));
    assert.deepEqual(o, occ('2026-10-24T20:00:00Z', '2026-10-25T03:00:00Z'));
    assert.equal(o.closesAt - o.opensAt, 7 * H);
  });
});

describe('window crossing midnight (22:00-02:00)', () => {
  const w = parseMaintenanceWindow('22:00-02:00', 'Europe/Berlin');

  test('after midnight the window that opened yesterday is open', () => {
    const now = at('2026-06-15T00:30:00+02:00');
    const o = occ('2026-06-14T20:00:00Z', '2026-06-15T00:00:00Z');
    assert.deepEqual(currentWindow(w, now), o);
    assert.deepEqual(upcomingWindow(w, now), o);
    assert.deepEqual(nextOpening(w, now), occ('2026-06-15T20:00:00Z', '2026-06-16T00:00:00Z'));
    assert.equal(
      describeNextWindow(w, now),
      'window 22:00-02:00 Europe/Berlin is open until 02:00 (1 h 30 m left)',
    );
  });

  test('before midnight it is open too, and closed from 02:00 until 22:00', () => {
    const o = occ('2026-06-14T20:00:00Z', '2026-06-15T00:00:00Z');
    assert.deepEqual(currentWindow(w, at('2026-06-14T23:59:00+02:00')), o);
    assert.equal(currentWindow(w, at('2026-06-15T02:00:00+02:00')), null);
    assert.equal(currentWindow(w, at('2026-06-15T21:59:59+02:00')), null);
    assert.equal(
      describeNextWindow(w, at('2026-06-15T02:00:00+02:00')),
      'window opens 22:00 Europe/Berlin, in 20 h',
    );
  });

  test('in UTC', () => {
    const u = parseMaintenanceWindow('22:00-02:00', 'UTC');
    assert.deepEqual(
      currentWindow(u, at('2026-01-01T01:59:59Z')),
      occ('2025-12-31T22:00:00Z', '2026-01-01T02:00:00Z'),
    );
    assert.equal(currentWindow(u, at('2026-01-01T02:00:00Z')), null);
    assert.deepEqual(
      nextOpening(u, at('2026-01-01T02:00:00Z')),
      occ('2026-01-01T22:00:00Z', '2026-01-02T02:00:00Z'),
    );
  });
});

describe('UTC', () => {
  test('UTC is read without Intl and agrees with Intl (Etc/GMT) at 20,000 random instants', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) {
      const text = `${String(Math.floor(next() * 24)).padStart(2, '0')}:${next() < 0.5 ? '00' : '45'}-${String(Math.floor(next() * 24)).padStart(2, '0')}:30`;
      const t = Date.UTC(2020, 0, 1) + Math.floor(next() * 3650 * 86_400_000);
      const fast = parseMaintenanceWindow(text, 'UTC');
      const intl = parseMaintenanceWindow(text, 'Etc/GMT');
      assert.deepEqual(
        currentWindow(fast, t),
        currentWindow(intl, t),
        `${text} at ${new Date(t).toISOString()}`,
      );
      assert.deepEqual(nextOpening(fast, t), nextOpening(intl, t), `${text} at ${new Date(t).toISOString()}`);
    }
  });

  const w = parseMaintenanceWindow('03:00-07:00', 'UTC');
  test('closed at 07:00, next opening the following day', () => {
    const now = at('2026-01-01T07:00:00Z');
    assert.equal(currentWindow(w, now), null);
    assert.deepEqual(nextOpening(w, now), occ('2026-01-02T03:00:00Z', '2026-01-02T07:00:00Z'));
    assert.equal(describeNextWindow(w, now), 'window opens 03:00 UTC, in 20 h');
  });
});

describe('Asia/Kolkata (UTC+05:30)', () => {
  const w = parseMaintenanceWindow('03:00-07:00', 'Asia/Kolkata');
  test('03:00 IST is 21:30Z the day before', () => {
    const now = at('2026-06-14T21:00:00Z'); // 02:30 IST
    assert.equal(currentWindow(w, now), null);
    assert.deepEqual(nextOpening(w, now), occ('2026-06-14T21:30:00Z', '2026-06-15T01:30:00Z'));
    assert.equal(describeNextWindow(w, now), 'window opens 03:00 Asia/Kolkata, in 30 m');
    assert.equal(
      describeNextWindow(w, at('2026-06-14T21:30:00Z')),
      'window 03:00-07:00 Asia/Kolkata is open until 07:00 (4 h left)',
    );
  });
  test('crossing midnight in a half-hour zone', () => {
    const x = parseMaintenanceWindow('23:45-00:15', 'Asia/Kolkata');
    assert.deepEqual(
      currentWindow(x, at('2026-06-14T18:40:00Z')),
      occ('2026-06-14T18:15:00Z', '2026-06-14T18:45:00Z'),
    );
    assert.equal(currentWindow(x, at('2026-06-14T18:45:00Z')), null);
  });
});

describe('America/New_York', () => {
  test('summer: 03:00 EDT is 07:00Z; winter: 03:00 EST is 08:00Z', () => {
    const w = parseMaintenanceWindow('03:00-07:00', 'America/New_York');
    assert.deepEqual(
      nextOpening(w, at('2026-07-01T00:00:00Z')),
      occ('2026-07-01T07:00:00Z', '2026-07-01T11:00:00Z'),
    );
    assert.deepEqual(
      nextOpening(w, at('2026-01-15T00:00:00Z')),
      occ('2026-01-15T08:00:00Z', '2026-01-15T12:00:00Z'),
    );
  });

  test('spring forward (2026-03-08, 02:00 EST → 03:00 EDT)', () => {
    const w = parseMaintenanceWindow('01:00-03:00', 'America/New_York');
    const o = nextOpening(w, at('2026-03-07T12:00:00Z'));
    assert.deepEqual(o, occ('2026-03-08T06:00:00Z', '2026-03-08T07:00:00Z'));
    const overnight = parseMaintenanceWindow('22:00-02:00', 'America/New_York');
    // 02:00 does not exist that night: the window closes at the transition, 03:00 EDT.
    assert.deepEqual(
      currentWindow(overnight, at('2026-03-08T06:59:00Z')),
      occ('2026-03-08T03:00:00Z', '2026-03-08T07:00:00Z'),
    );
    assert.equal(currentWindow(overnight, at('2026-03-08T07:00:00Z')), null);
  });

  test('fall back (2026-11-01, 02:00 EDT → 01:00 EST): 01:30 is the EDT one', () => {
    const w = parseMaintenanceWindow('01:30-03:00', 'America/New_York');
    const o = nextOpening(w, at('2026-10-31T12:00:00Z'));
    assert.deepEqual(o, occ('2026-11-01T05:30:00Z', '2026-11-01T08:00:00Z'));
    assert.equal(o.closesAt - o.opensAt, 2 * H + 30 * M);
    assert.equal(
      describeNextWindow(w, at('2026-11-01T06:30:00Z')), // 01:30 EST, second pass
      'window 01:30-03:00 America/New_York is open until 03:00 (1 h 30 m left)',
    );
  });
});

describe('Australia/Lord_Howe (half-hour DST shift)', () => {
  test('02:10 does not exist on 2026-10-04 (02:00 → 02:30): opens at the transition', () => {
    const w = parseMaintenanceWindow('02:10-04:00', 'Australia/Lord_Howe');
    const o = nextOpening(w, at('2026-10-03T00:00:00Z'));
    assert.deepEqual(o, occ('2026-10-03T15:30:00Z', '2026-10-03T17:00:00Z'));
    assert.equal(formatLocalTime(o.opensAt, 'Australia/Lord_Howe'), '02:30');
  });
});

describe('invariants over a year of instants', () => {
  const cases: [MaintenanceWindow, string][] = [
    [parseMaintenanceWindow('03:00-07:00', 'Europe/Berlin'), '03:00'],
    [parseMaintenanceWindow('22:00-02:00', 'America/New_York'), '22:00'],
    [parseMaintenanceWindow('03:00-07:00', 'Asia/Kolkata'), '03:00'],
  ];
  for (const [w, opensLocal] of cases) {
    test(`${w.text} ${w.timeZone}`, () => {
      const start = at('2026-01-01T00:00:00Z');
      const end = at('2027-01-01T00:00:00Z');
      for (let now = start; now < end; now += 97 * M) {
        const next = nextOpening(w, now);
        assert.ok(next.opensAt > now, `nextOpening not after now at ${new Date(now).toISOString()}`);
        assert.ok(next.opensAt - now <= 25 * H, `nextOpening too far at ${new Date(now).toISOString()}`);
        assert.ok(next.closesAt - next.opensAt >= 3 * H && next.closesAt - next.opensAt <= 5 * H);
        assert.equal(formatLocalTime(next.opensAt, w.timeZone), opensLocal);
        // no opening in between: just before the found opening, it is still the next one
        assert.deepEqual(nextOpening(w, next.opensAt - 1), next);
        const current = currentWindow(w, now);
        if (current !== null) {
          assert.ok(current.opensAt <= now && now < current.closesAt);
          assert.ok(current.closesAt <= next.opensAt);
          assert.deepEqual(upcomingWindow(w, now), current);
        } else {
          assert.deepEqual(upcomingWindow(w, now), next);
          // closed now, and the previous occurrence (if it is near) has already closed
          assert.equal(currentWindow(w, next.opensAt - 1), null);
        }
        assert.deepEqual(currentWindow(w, next.opensAt), next);
        assert.equal(currentWindow(w, next.closesAt), null);
      }
    });
  }
});
