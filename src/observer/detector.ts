// Lines → incidents. Stateful but deterministic: the same lines with the same times give the same
// incidents. One incident per event: the lines of a traceback, the same failure repeated by several
// worker processes (tensor-parallel ranks print it once each) and the engine's death right after all
// collapse into the incident of the first line.
import { classifyLine, type LineClass } from './patterns.js';
import { parseLogTime } from './log-time.js';
import type { Incident, IncidentFamily } from './types.js';

export const DEFAULT_COLLAPSE_WINDOW_MS = 5_000;
/** An engine death this long after a memory incident (but outside its collapse window) is blamed on it. */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 60_000;
/** A burst never spans more than this many collapse windows (a crash loop is several incidents). */
const MAX_SPAN_WINDOWS = 12;
const MAX_TEXT = 4000;
/** Unstamped lines further apart than this are separate events, whatever the clock says. */
const MAX_UNSTAMPED_LINE_GAP = 500;

export interface LogLine {
  text: string;
  /** 1-based line number in its source. */
  line: number;
  /** Byte offset of the line's start (files) or its ordinal (streams). */
  position: number;
  /** When the line was read, epoch ms: the clock for lines that carry no timestamp. */
  arrivalMs: number;
}

export interface DetectorOptions {
  collapseWindowMs?: number;
  attributionWindowMs?: number;
}

interface Open {
  incident: Incident;
  firstMs: number;
  lastMs: number;
  lastLine: number;
}

export class IncidentDetector {
  private readonly windowMs: number;
  private readonly attributionMs: number;
  private memory: Open | null = null;
  private xid: Open | null = null;
  /** Whether the last memory incident's engine death was seen (with it, or reported as engine_dead). */
  private deathReported = false;
  // Lines without a timestamp (traceback frames, raw worker output) run on from the last one that had one.
  private stampMs: number | null = null;
  private stampArrivalMs = 0;
  private line = 0;
  private lastPlain: LogLine | null = null;
  private unstamped = false;

  constructor(opts: DetectorOptions = {}) {
    this.windowMs = Math.max(0, opts.collapseWindowMs ?? DEFAULT_COLLAPSE_WINDOW_MS);
    this.attributionMs = Math.max(this.windowMs, opts.attributionWindowMs ?? DEFAULT_ATTRIBUTION_WINDOW_MS);
  }

  /** Feed one line; returns the incident it starts, if any (never more than one). */
  push(line: LogLine): Incident | null {
    const cls = classifyLine(line.text);
    if (cls === null) {
      // Most lines say nothing: remember the last one instead of parsing its time (the scan's hot path).
      this.lastPlain = line;
      return null;
    }
    const own = parseLogTime(line.text, line.arrivalMs);
    if (own === null && this.lastPlain) {
      // An unstamped line (traceback frame, raw worker output): the clock is the last stamped line's,
      // so a stale stamp from long ago does not date it.
      const before = parseLogTime(this.lastPlain.text, this.lastPlain.arrivalMs);
      if (before !== null) {
        this.stampMs = before;
        this.stampArrivalMs = this.lastPlain.arrivalMs;
      }
    }
    this.lastPlain = null;
    if (own !== null) {
      this.stampMs = own;
      this.stampArrivalMs = line.arrivalMs;
    }
    const nowMs =
      own ?? (this.stampMs === null ? line.arrivalMs : this.stampMs + (line.arrivalMs - this.stampArrivalMs));
    const at = own === null ? null : new Date(own).toISOString();
    return this.classify(cls, line, nowMs, at, own === null);
  }

  private classify(
    cls: LineClass,
    line: LogLine,
    nowMs: number,
    at: string | null,
    unstamped: boolean,
  ): Incident | null {
    this.line = line.line;
    this.unstamped = unstamped;
    if (cls.type === 'xid') {
      if (this.absorbs(this.xid, nowMs)) return null;
      const incident = base('gpu_xid', 'gpu_xid', line, at);
      incident.xid = cls.xid;
      this.xid = { incident, firstMs: nowMs, lastMs: nowMs, lastLine: line.line };
      return incident;
    }
    if (cls.type === 'engine_death') {
      if (this.absorbs(this.memory, nowMs)) {
        // The engine died with the failure (V1 prints both within milliseconds): one event.
        this.deathReported = true;
        return null;
      }
      const last = this.memory;
      // An engine death with no memory failure shortly before is not a memory incident; nor is a later
      // echo of a death already seen ("Background loop has errored already" on every next request).
      if (!last || this.deathReported || nowMs - last.lastMs > this.attributionMs || nowMs < last.firstMs)
        return null;
      this.deathReported = true;
      const incident = base('vllm_oom', 'engine_dead', line, at);
      incident.cause = last.incident.family;
      this.memory = { incident, firstMs: nowMs, lastMs: nowMs, lastLine: line.line };
      return incident;
    }
    if (this.absorbs(this.memory, nowMs)) return null;
    const incident = base('vllm_oom', cls.family, line, at);
    incident.sizesMib = cls.sizes;
    if (cls.gpu !== undefined) incident.gpu = cls.gpu;
    if (cls.estimatedMaxModelLen !== undefined) incident.estimatedMaxModelLen = cls.estimatedMaxModelLen;
    this.memory = { incident, firstMs: nowMs, lastMs: nowMs, lastLine: line.line };
    this.deathReported = false;
    return incident;
  }

  /** True when the line belongs to the open burst (and extends it). */
  private absorbs(open: Open | null, nowMs: number): boolean {
    if (!open) return false;
    const near = Math.abs(nowMs - open.lastMs) <= this.windowMs;
    const spanOk = nowMs - open.firstMs <= this.windowMs * MAX_SPAN_WINDOWS;
    // Without timestamps (a file read at once) time does not tell events apart: distance in lines does.
    const closeBy = !this.unstamped || this.line - open.lastLine <= MAX_UNSTAMPED_LINE_GAP;
    if (!near || !spanOk || !closeBy) return false;
    open.lastMs = Math.max(open.lastMs, nowMs);
    open.lastLine = this.line;
    return true;
  }
}

function base(kind: string, family: IncidentFamily, line: LogLine, at: string | null): Incident {
  return {
    kind,
    family,
    line: line.line,
    position: line.position,
    at,
    sizesMib: {},
    text: line.text.trim().slice(0, MAX_TEXT),
  };
}

/** Every incident in a list of lines (all read "now"): for tests and one-shot scans. */
export function detectAll(
  texts: readonly string[],
  opts: DetectorOptions & { arrivalMs?: number } = {},
): Incident[] {
  const detector = new IncidentDetector(opts);
  const arrivalMs = opts.arrivalMs ?? Date.now();
  const out: Incident[] = [];
  let position = 0;
  texts.forEach((text, i) => {
    const found = detector.push({ text, line: i + 1, position, arrivalMs });
    if (found) out.push(found);
    position += Buffer.byteLength(text) + 1;
  });
  return out;
}
