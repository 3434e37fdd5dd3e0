// kloros_build_info{version, node_version, temporal_sdk} = 1: what a process runs, on its own /metrics, so a
// dashboard or an alert can tell releases apart (`count by (version) (kloros_build_info)`) and join them
// onto other series. Both long-running processes register it on their registry: the observer, the worker.
import { createRequire } from 'node:module';
import { Gauge, type Registry } from 'prom-client';
import { VERSION } from '../config/package-version.js';
import type { MetricSpec } from './catalog.js';

export const BUILD_INFO = {
  name: 'kloros_build_info',
  type: 'gauge',
  help: 'Always 1: the kloros-healing release this process runs, its Node.js and its Temporal TypeScript SDK.',
  labels: ['version', 'node_version', 'temporal_sdk'],
} as const satisfies MetricSpec;

/** The labels (a type, not an interface, so that it is a Record<string, string> where labels are wanted). */
export type BuildInfo = {
  version: string;
  node_version: string;
  temporal_sdk: string;
};

/** The installed SDK's version (the packages are released together; common is what every part uses). */
function temporalSdkVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('@temporalio/common/package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The labels of this process's kloros_build_info. */
export function buildInfo(): BuildInfo {
  return { version: VERSION, node_version: process.version, temporal_sdk: temporalSdkVersion() };
}

/** Registers kloros_build_info (one series, value 1) on `registry`. */
export function registerBuildInfo(registry: Registry, info: BuildInfo = buildInfo()): void {
  const gauge = new Gauge({
    name: BUILD_INFO.name,
    help: BUILD_INFO.help,
    labelNames: [...BUILD_INFO.labels],
    registers: [registry],
  });
  gauge.set({ ...info }, 1);
}
