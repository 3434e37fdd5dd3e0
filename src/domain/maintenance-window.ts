// The daily maintenance window ("03:00-07:00" in an IANA zone) and its occurrences as UTC instants.
//
// Pure and deterministic: this module runs inside the Temporal workflow sandbox. Time always comes in
// as epoch milliseconds; zones are resolved with Intl.DateTimeFormat only (no Node built-ins, no
// third-party date library, no clock reads).
//
// Wall-clock semantics in the window's zone, DST-correct:
// - A window opens at its local start time on every local calendar day D and closes at its local end
//   time on D (or on D+1 when end < start: "22:00-02:00" crosses midnight).
// - A local time that does not exist (spring-forward gap, e.g. 02:30 in Europe/Berlin on the last
//   Sunday of March) resolves to the first instant that exists after it: the transition itself
//   (03:00 CEST = 01:00Z).
// - A local time that exists twice (fall-back overlap) resolves to its FIRST occurrence.
// - Both rules apply to opening and closing alike, so an occurrence may be shorter or longer than the
//   nominal length on a DST day. An occurrence that resolves to zero length (both ends inside the same
//   gap) does not happen that day.
// - An occurrence is open on [opensAt, closesAt): open exactly at opening, closed exactly at closing.

import { formatDuration } from './duration-text.js';

/** A daily window in local wall-clock time. Minutes are counted from local midnight (0..1439). */
export interface MaintenanceWindow {
  /** Normalised text, `HH:MM-HH:MM`. */
  text: string;
  startMinute: number;
  endMinute: number;
  /** IANA zone the window's wall-clock times are in, as given (trimmed). */
  timeZone: string;
}

/** One occurrence of a window, as UTC instants (epoch ms). Open on [opensAt, closesAt). */
export interface WindowOccurrence {
  opensAt: number;
  closesAt: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const EXPECTED_FORMAT = 'expected HH:MM-HH:MM in 24-hour time, e.g. 03:00-07:00';

// ---------------------------------------------------------------------------------------------------
// Zone arithmetic
// ---------------------------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

interface WallClock {
  year: number;
  month: number; // 1..12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** Zones that are UTC by definition: read without Intl, which costs microseconds per call. */
const UTC_ZONES: ReadonlySet<string> = new Set(['UTC', 'Etc/UTC']);

function wallClock(epochMs: number, timeZone: string): WallClock {
  if (UTC_ZONES.has(timeZone)) {
    const d = new Date(epochMs);
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
    };
  }
  const clock: WallClock = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
  for (const part of formatterFor(timeZone).formatToParts(epochMs)) {
    switch (part.type) {
      case 'year':
      case 'month':
      case 'day':
      case 'hour':
      case 'minute':
      case 'second':
        clock[part.type] = Number(part.value);
        break;
      default:
        break;
    }
  }
  // Some engines print midnight as 24 even with hourCycle h23; it is the start of the same day.
  if (clock.hour === 24) clock.hour = 0;
  return clock;
}

/** The local wall clock at an instant, expressed as if it were a UTC instant (whole seconds). */
function localAsUtc(epochMs: number, timeZone: string): number {
  const c = wallClock(epochMs, timeZone);
  return Date.UTC(c.year, c.month - 1, c.day, c.hour, c.minute, c.second);
}

/** The zone's UTC offset (ms, local minus UTC) at an instant. */
function offsetAt(epochMs: number, timeZone: string): number {
  const wholeSecond = epochMs - (((epochMs % 1000) + 1000) % 1000);
  return localAsUtc(wholeSecond, timeZone) - wholeSecond;
}

/**
 * The UTC instant of a local wall-clock time, given as if it were a UTC instant (`localMs`, whole
 * seconds). Ambiguous (fall-back) → first occurrence; nonexistent (spring-forward) → the first instant
 * that exists after it, i.e. the transition.
 */
function resolveLocal(localMs: number, timeZone: string): number {
  const before = offsetAt(localMs - DAY_MS, timeZone);
  const after = offsetAt(localMs + DAY_MS, timeZone);
  let earliest: number | undefined;
  for (const offset of before === after ? [before] : [before, after]) {
    const candidate = localMs - offset;
    if (offsetAt(candidate, timeZone) === offset && (earliest === undefined || candidate < earliest)) {
      earliest = candidate;
    }
  }
  if (earliest !== undefined) return earliest;

  // A gap: find the first whole second whose wall clock is at or past the wanted local time.
  let lo = localMs - Math.max(before, after); // wall clock before localMs
  let hi = localMs - Math.min(before, after); // wall clock at or after localMs
  if (localAsUtc(lo, timeZone) >= localMs || localAsUtc(hi, timeZone) < localMs) {
    return localMs - before; // not a simple gap; keep the pre-transition reading
  }
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (localAsUtc(mid, timeZone) >= localMs) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Local midnight of the local calendar day containing the instant, as if it were a UTC instant. */
function localDayStart(epochMs: number, timeZone: string): number {
  const c = wallClock(epochMs, timeZone);
  return Date.UTC(c.year, c.month - 1, c.day);
}

// Occurrences are pure functions of (zone, start, end, day); a small memo keeps repeated activations
// cheap. It is bounded and only ever holds values the computation would return anyway.
const occurrenceMemo = new Map<string, WindowOccurrence | null>();
const OCCURRENCE_MEMO_LIMIT = 256;

/** The occurrence opening on the local day starting at `dayStart` (local midnight as UTC), or null. */
function occurrenceOnDay(w: MaintenanceWindow, dayStart: number): WindowOccurrence | null {
  const key = `${w.timeZone}|${w.startMinute}|${w.endMinute}|${dayStart}`;
  const memo = occurrenceMemo.get(key);
  if (memo !== undefined) return memo;
  const opensAt = resolveLocal(dayStart + w.startMinute * MINUTE_MS, w.timeZone);
  const closeDay = w.endMinute > w.startMinute ? dayStart : dayStart + DAY_MS;
  const closesAt = resolveLocal(closeDay + w.endMinute * MINUTE_MS, w.timeZone);
  const occurrence = closesAt > opensAt ? { opensAt, closesAt } : null;
  if (occurrenceMemo.size >= OCCURRENCE_MEMO_LIMIT) occurrenceMemo.clear();
  occurrenceMemo.set(key, occurrence);
  return occurrence;
}

// ---------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------

/** Whether `timeZone` names a zone this runtime's Intl knows (an IANA name such as Europe/Berlin or UTC). */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone.trim() === '') return false;
  try {
    formatterFor(timeZone.trim());
    return true;
  } catch {
    return false;
  }
}

function parseTime(text: string, hourText: string, minuteText: string): number {
  const hour = Number(hourText);
  const minute = Number(minuteText);
  if (hour > 23) {
    const hint = hour === 24 ? ' (write midnight as 00:00)' : '';
    throw new Error(`"${text}": hour ${hour} is out of range 00-23${hint}; ${EXPECTED_FORMAT}`);
  }
  if (minute > 59) {
    throw new Error(`"${text}": minute ${minuteText} is out of range 00-59; ${EXPECTED_FORMAT}`);
  }
  return hour * 60 + minute;
}

function formatMinute(minuteOfDay: number): string {
  const hh = String(Math.floor(minuteOfDay / 60)).padStart(2, '0');
  const mm = String(minuteOfDay % 60).padStart(2, '0');
  return `${hh}:${mm}`;
}

/**
 * Parses `HH:MM-HH:MM` (24-hour; leading zero on hours optional; whitespace around the text and the
 * dash allowed; may cross midnight) in an IANA zone. Throws an Error that says what is wrong and what
 * is expected.
 */
export function parseMaintenanceWindow(text: string, timeZone: string): MaintenanceWindow {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new Error(`maintenance window is empty; ${EXPECTED_FORMAT}`);
  }
  const match = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (match === null) {
    throw new Error(`"${text}" is not a maintenance window; ${EXPECTED_FORMAT}`);
  }
  const [, startHour = '', startMin = '', endHour = '', endMin = ''] = match;
  const startMinute = parseTime(text, startHour, startMin);
  const endMinute = parseTime(text, endHour, endMin);
  if (startMinute === endMinute) {
    throw new Error(
      `"${text}": start and end are both ${formatMinute(startMinute)}, so the window has no length; ${EXPECTED_FORMAT}`,
    );
  }
  const zone = typeof timeZone === 'string' ? timeZone.trim() : '';
  if (!isValidTimeZone(zone)) {
    const shown = zone === '' ? 'time zone is empty' : `"${zone}" is not a known time zone`;
    throw new Error(
      `${shown}; expected an IANA time zone name such as Europe/Berlin, America/New_York or UTC`,
    );
  }
  return {
    text: `${formatMinute(startMinute)}-${formatMinute(endMinute)}`,
    startMinute,
    endMinute,
    timeZone: zone,
  };
}

/** The occurrence open at `nowMs` (opensAt <= nowMs < closesAt), else null. */
export function currentWindow(w: MaintenanceWindow, nowMs: number): WindowOccurrence | null {
  const today = localDayStart(nowMs, w.timeZone);
  // Yesterday's occurrence may cross midnight into today; the outer days only matter around
  // transitions that move the local date backwards, and are cheap thanks to the memo.
  for (const k of [-1, 0, -2, 1]) {
    const occurrence = occurrenceOnDay(w, today + k * DAY_MS);
    if (occurrence !== null && occurrence.opensAt <= nowMs && nowMs < occurrence.closesAt) return occurrence;
  }
  return null;
}

/** The first occurrence that opens strictly after `nowMs`. */
export function nextOpening(w: MaintenanceWindow, nowMs: number): WindowOccurrence {
  const today = localDayStart(nowMs, w.timeZone);
  let best: WindowOccurrence | undefined;
  for (let k = -1; k <= 7; k++) {
    const occurrence = occurrenceOnDay(w, today + k * DAY_MS);
    if (occurrence === null || occurrence.opensAt <= nowMs) continue;
    if (best === undefined || occurrence.opensAt < best.opensAt) best = occurrence;
    if (k >= 1) break; // openings only move forward from day to day; one found after today is the first
  }
  if (best === undefined) {
    throw new Error(`maintenance window ${w.text} ${w.timeZone} has no opening in the next week`);
  }
  return best;
}

/** The occurrence open now, or else the next one to open. */
export function upcomingWindow(w: MaintenanceWindow, nowMs: number): WindowOccurrence {
  return currentWindow(w, nowMs) ?? nextOpening(w, nowMs);
}

/** `"HH:MM"` of the instant's wall clock in the zone. */
export function formatLocalTime(epochMs: number, timeZone: string): string {
  const c = wallClock(epochMs, timeZone);
  return `${String(c.hour).padStart(2, '0')}:${String(c.minute).padStart(2, '0')}`;
}

/**
 * A decision-reason sentence: `"window 03:00-07:00 Europe/Berlin is open until 07:00 (3 h 10 m left)"`
 * or `"window opens 03:00 Europe/Berlin, in 5 h 12 m"`. Times shown are the true local times of the
 * resolved instants (on a spring-forward day a 02:30 opening shows as 03:00).
 */
export function describeNextWindow(w: MaintenanceWindow, nowMs: number): string {
  const open = currentWindow(w, nowMs);
  if (open !== null) {
    const closes = formatLocalTime(open.closesAt, w.timeZone);
    return `window ${w.text} ${w.timeZone} is open until ${closes} (${formatDuration(open.closesAt - nowMs)} left)`;
  }
  const next = nextOpening(w, nowMs);
  const opens = formatLocalTime(next.opensAt, w.timeZone);
  return `window opens ${opens} ${w.timeZone}, in ${formatDuration(next.opensAt - nowMs)}`;
}
