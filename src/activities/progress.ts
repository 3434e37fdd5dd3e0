// What a long activity that changes the service reports while it runs: its phase in every heartbeat (the
// Web UI and healctl show it; a retry or a restore reads it from the last heartbeat).
import type { Context } from '@temporalio/activity';

export type CanaryPhase = 'backup' | 'apply' | 'restart' | 'health' | 'probe' | 'soak' | 'promote';
export type RestorePhase = 'restore' | 'restart' | 'health';

/** Heartbeats with the current phase: on every phase change and every second in between. */
export class Progress<P extends string> {
  private phase: P | null = null;
  private extra: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | undefined;
  private readonly started = performance.now();

  constructor(
    private readonly ctx: Context,
    private readonly base: Record<string, unknown>,
    private readonly everyMs = 1_000,
  ) {}

  start(): this {
    this.timer = setInterval(() => this.beat(), this.everyMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get current(): P | null {
    return this.phase;
  }

  enter(phase: P, extra: Record<string, unknown> = {}): void {
    this.phase = phase;
    this.extra = { ...this.extra, ...extra };
    this.beat();
  }

  note(extra: Record<string, unknown>): void {
    this.extra = { ...this.extra, ...extra };
  }

  beat(): void {
    this.ctx.heartbeat({
      ...this.base,
      phase: this.phase,
      elapsedMs: Math.round(performance.now() - this.started),
      ...this.extra,
    });
  }
}

/** A log line cut for a reason or a message. */
export const shorten = (line: string, max = 300): string =>
  line.length > max ? `${line.slice(0, max)}…` : line;
