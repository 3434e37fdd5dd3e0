// One kind of managed service behind the operations that change it: the canary, the restore and healctl
// rollback run the same steps through this interface, whatever the service is (flagger's canary.Controller:
// one implementation per kind of target). The first is vLLM with a YAML config file and a restart command
// (vllm-service.ts); a container with a bind-mounted config, or a Kubernetes Deployment whose args or
// ConfigMap are patched and rolled out, would be others (docs/deployment.md).
import type { CandidateConfig, StartMeasurement } from '../domain/recommendation.js';
import type { VramSnapshot } from '../domain/vram-snapshot.js';
import type { LeaseRecord, RollbackResult } from './config-file.js';
import type { ProbeResult } from './health.js';
import type { ProbeSize } from './probe-size.js';

/** How a wait for the service to answer healthy ended. */
export type HealthOutcome =
  | { healthy: true; afterMs: number }
  | { healthy: false; why: 'log' | 'deadline'; lastAnswer: string; logLine: string | null };

/** Where the service's own log stands: what it writes from here on is the new process's. */
export type LogMark = number | null;

export interface ServiceAdapter {
  /** Where the service answers (for messages). */
  readonly baseUrl: string;
  /** Its config, as the operator named it (for messages and records). */
  readonly configPath: string;
  /** Longest a restart may take, command to healthy, ms (a restore's and a rollback's deadline). */
  readonly restartTimeoutMs: number;

  // ---- the config, every step keyed by the lease so that a rerun or a restore converges
  /** The live config. Throws ConfigFileError when it cannot be read. */
  readConfig(): Promise<Buffer>;
  /** The live config, or null when there is none (a restore must still say what it found). */
  readConfigIfAny(): Promise<Buffer | null>;
  /** The config as the candidate's changes make it, every other byte kept. Throws ServingConfigError. */
  withChanges(configText: string, candidate: CandidateConfig): string;
  /** Keep the live config as this lease's backup (once: a backup already there is the original). */
  backup(leaseId: string): Promise<string>;
  /** This lease's backup, or null when the canary never took one. */
  readBackup(leaseId: string): Promise<Buffer | null>;
  /** Write a config atomically, keeping the file's mode. */
  writeConfig(text: string): Promise<void>;
  /** Put this lease's backup back; `changed` false when the config already held it. */
  restoreBackup(leaseId: string): Promise<{ changed: boolean }>;
  /** The candidate stays; the config it replaced is kept as the one `rollbackToPrevious` puts back. */
  promote(leaseId: string): Promise<string>;
  /** healctl rollback: the config the last promotion replaced, back in place. */
  rollbackToPrevious(): Promise<RollbackResult>;
  readLeaseRecord(leaseId: string): Promise<LeaseRecord | null>;
  writeLeaseRecord(record: LeaseRecord): Promise<void>;

  // ---- the running service
  /**
   * Restart it (bounded by `restartTimeoutMs`; the whole process group ends at the deadline). `logMark`:
   * the log's end once the command returned, where failures start to count (before it, a crash-looping
   * old process may still print its own); `startMark`: the log's end before the command ran, where the
   * new start's report is read from (a fast start prints its banner before the command returns).
   */
  restart(signal: AbortSignal): Promise<{ commandMs: number; logMark: LogMark; startMark: LogMark }>;
  /** Wait until healthy or the deadline; a GPU memory failure in its log since `logMark` ends it early. */
  waitHealthy(opts: {
    deadlineMs: number;
    logMark: LogMark;
    signal: AbortSignal;
    onPoll?: (lastAnswer: string) => void;
  }): Promise<HealthOutcome>;
  /** One health check. */
  checkHealth(timeoutMs: number, signal: AbortSignal): Promise<{ ok: true } | { ok: false; answer: string }>;
  /** The probe's size, from the service's own traffic (read before a restart resets its metrics). */
  planProbe(configText: string, signal: AbortSignal): Promise<ProbeSize>;
  /** One real completion of that size against the service running `configText`. Throws ProbeError. */
  probe(configText: string, size: ProbeSize, signal: AbortSignal): Promise<ProbeResult>;
  /** GPU memory as the GPUs report it. */
  measureVram(): Promise<VramSnapshot>;
  /** What the latest start since `startMark` reported about its memory, checked against the candidate. */
  startupMeasurement(startMark: LogMark, candidate: CandidateConfig): Promise<StartMeasurement | null>;
  /** Follows the service's log from `logMark` for GPU memory failures; null when it has no log. */
  followLog(logMark: LogMark): { poll(final?: boolean): Promise<string | null> } | null;
  /** The first GPU memory failure logged since `logMark`, or null. */
  logCause(logMark: LogMark): Promise<string | null>;
}
