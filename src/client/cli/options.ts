// Arguments shared by the commands: validated kinds and hosts (usage errors, exit 2), the operator's
// name and reason, and the --host option.
import { hostname, userInfo } from 'node:os';
import { type Command, Option } from 'commander';
import {
  HOST_EXPECTED,
  KIND_EXPECTED,
  SERVICE_EXPECTED,
  isValidHost,
  isValidKind,
  isValidService,
} from '../../domain/identifiers.js';
import { UsageError } from './errors.js';
import { resolveHost } from './context.js';
import { quotedValue } from '../../domain/quoted-value.js';

export function parseKind(kind: string, command: string): string {
  if (!isValidKind(kind)) {
    throw new UsageError(`healctl ${command}: bad kind ${JSON.stringify(kind)}: expected ${KIND_EXPECTED}`);
  }
  return kind;
}

export function parseHost(host: string, command: string): string {
  if (!isValidHost(host)) {
    throw new UsageError(`healctl ${command}: bad host ${JSON.stringify(host)}: expected ${HOST_EXPECTED}`);
  }
  return host;
}

/** A value as an error message quotes it: JSON, at most 80 characters of it (a 10 kB argument stays one line). */
export function quoted(value: string): string {
  return quotedValue(value, 80);
}

/** --service, validated: a bad name is a usage error (exit 2) saying what is expected. */
export function parseService(service: string | undefined, command: string): string | undefined {
  if (service !== undefined && !isValidService(service)) {
    throw new UsageError(
      `healctl ${command}: bad --service ${quoted(service)}: expected ${SERVICE_EXPECTED}`,
    );
  }
  return service;
}

export function addServiceOption(
  cmd: Command,
  description = 'the service on the host, when it runs several (default: the only one, or the legacy one)',
): Command {
  return cmd.addOption(new Option('--service <name>', description));
}

/** --host, KLR_HOST or this machine's name, validated. */
export function hostFrom(opts: { host?: string }, command: string): string {
  return parseHost(resolveHost(opts.host), command);
}

export function hostOption(): Option {
  return new Option('--host <host>', 'the GPU host (default: $KLR_HOST, else this machine’s name)');
}

export function addHostOption(cmd: Command): Command {
  return cmd.addOption(hostOption());
}

/** Who asks, for the decision log: --by, else $USER@hostname. */
export function operatorName(by: string | undefined): string {
  if (by) return by;
  let user = process.env.USER ?? process.env.LOGNAME;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${hostname()}`;
}

/** Operator actions that change behaviour are recorded with a reason; without one it is a usage error. */
export function requireReason(reason: string | undefined, command: string): string {
  if (reason === undefined || reason.trim() === '') {
    throw new UsageError(
      `healctl ${command}: --reason is required: say why, it is kept in the decision log (e.g. --reason "driver update tonight")`,
    );
  }
  return reason;
}
