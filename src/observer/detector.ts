// Lines → incidents. Stateful but deterministic: the same lines with the same times give the same
// incidents. One incident per event: the lines of a traceback, the same failure repeated by several
// worker processes (tensor-parallel ranks print it once each) and the engine's death right after all
// collapse into the incident of the first line.
import { classifyLine, type LineClass } from './patterns.js';
import { kernelClockMs, parseLogTime } from './log-time.js';
import type { Incident, IncidentFamily } from './types.js';

export const DEFAULT_COLLAPSE_WINDOW_MS = 5_000;
/** An engine death this long after a memory incident (but outside its collapse window) is blamed on it. */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 60_000;
/** A burst never spans more than this many collapse windows (a crash loop is several incidents). */
const MAX_SPAN_WINDOWS = 12;
const MAX_TEXT = 4000;
/** Unstamped lines further apart than this are separate events, whatever the clock says. */
const MAX_UNSTAMPED_LINE_GAP = 500;
/**
 * GPU faults: the driver's lines of one fault come within the same second (an Xid 13 over several lines, an
 * Xid 62 with the 154 and 45 it causes); the same fault again within a minute is the same event going on.
 * A different fault later, or the same one a minute later, is another incident.
 */
const HARDWARE_BURST_MS = 1_000;
const HARDWARE_REPEAT_MS = 60_000;

/** The kind a server-specific wording implies when the observer was not told the kind of its log. */
const KIND_OF_FAMILY: Partial<Record<IncidentFamily, string>> = {
  sglang_mem_fraction: 'sglang_oom',
  tgi_prefill_tokens: 'tgi_oom',
  llamacpp_cuda_alloc: 'llamacpp_oom',
  trtllm_cuda_alloc: 'trtllm_oom',
  ollama_system_memory: 'ollama_oom',
};
const DEFAULT_MEMORY_KIND = 'vllm_oom';

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
  /**
   * The kind of a memory incident: the kind of the server whose log this is (KLR_OBSERVER_KIND). Unset:
   * vllm_oom, or the server a wording names (ggml's "cudaMalloc failed" → llamacpp_oom, …).
   */
  memoryKind?: string;
}

interface Open {
  incident: Incident;
  firstMs: number;
  lastMs: number;
  lastLine: number;
}

/** An open burst of driver lines, on the kernel's own clock when the lines carry it. */
interface HardwareOpen {
  incident: Incident;
  lastMs: number;
  clock: 'kernel' | 'wall';
}

export class IncidentDetector {
  private readonly windowMs: number;
  private readonly attributionMs: number;
  private readonly memoryKind: string | undefined;
  private memory: Open | null = null;
  private hardware: HardwareOpen | null = null;
  /** When each fault (clock, family, Xid) was last seen: the same fault within a minute is one event. */
  private readonly hardwareSeen = new Map<string, number>();
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
    this.memoryKind = opts.memoryKind;
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
    if (cls.type === 'hardware') return this.hardwareFault(cls, line, nowMs, at);
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
      const incident = base(last.incident.kind, 'engine_dead', line, at);
      incident.cause = last.incident.family;
      this.memory = { incident, firstMs: nowMs, lastMs: nowMs, lastLine: line.line };
      return incident;
    }
    if (this.absorbs(this.memory, nowMs)) return null;
    const kind = this.memoryKind ?? KIND_OF_FAMILY[cls.family] ?? DEFAULT_MEMORY_KIND;
    const incident = base(kind, cls.family, line, at);
    incident.sizesMib = cls.sizes;
    if (cls.gpu !== undefined) incident.gpu = cls.gpu;
    if (cls.estimatedMaxModelLen !== undefined) incident.estimatedMaxModelLen = cls.estimatedMaxModelLen;
    this.memory = { incident, firstMs: nowMs, lastMs: nowMs, lastLine: line.line };
    this.deathReported = false;
    return incident;
  }

  /**
   * A driver line: part of the open fault when it comes within the same second, or when it is the same
   * fault (family, Xid) again within a minute; else a new incident. The kernel's own timestamp
   * ("[31609.615230]", seconds since boot) is the clock where the line has one: dmesg output often has no
   * other.
   */
  private hardwareFault(
    cls: Extract<LineClass, { type: 'hardware' }>,
    line: LogLine,
    nowMs: number,
    at: string | null,
  ): Incident | null {
    const kernel = kernelClockMs(line.text);
    const t = kernel ?? nowMs;
    const clock = kernel === null ? 'wall' : 'kernel';
    const key = `${clock}|${cls.family}/${cls.xid ?? ''}`;
    const open = this.hardware;
    const seen = this.hardwareSeen.get(key);
    this.hardwareSeen.set(key, t);
    const near =
      open !== null && open.clock === clock && t - open.lastMs >= 0 && t - open.lastMs < HARDWARE_BURST_MS;
    const repeat = seen !== undefined && t - seen >= 0 && t - seen <= HARDWARE_REPEAT_MS;
    if (near || repeat) {
      if (open && open.clock === clock) open.lastMs = Math.max(open.lastMs, t);
      return null;
    }
    const incident = base('gpu_xid', cls.family, line, at);
    if (cls.xid !== undefined) incident.xid = cls.xid;
    if (cls.pci !== undefined) incident.pci = cls.pci;
    this.hardware = { incident, lastMs: t, clock };
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
