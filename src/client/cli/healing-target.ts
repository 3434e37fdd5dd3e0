// Which healing workflow a command addresses (issue 17: several vLLM services on one GPU host). Every
// command that speaks about one (host, kind) resolves it here, with or without --service:
//
// --service X, and the environment describes this host's services (KLR_SERVICES_FILE, or the KLR_SERVICE_*
//   shortcut, as on the GPU host with the worker's environment): the services file decides (routeService),
//   an unknown name is an error naming the configured ones.
// --service X otherwise: kloros-healing/<host>/X/<kind> when it exists; else the legacy id
//   kloros-healing/<host>/<kind> when its service is named X (its KlrService search attribute, else its state
//   query); else an error naming the services that have a workflow for that kind.
// no --service: the legacy id while it runs; else the one service that has a workflow for that kind (from
//   visibility); several: an error asking for `--service one of: a, b`.
//
// Commands that create the workflow (symptom, start) get the id it would have when none exists yet.
import { type Client, type WorkflowExecutionDescription, WorkflowNotFoundError } from '@temporalio/client';
import { defaultHostName } from '../../config/settings.js';
import { healingWorkflowId } from '../../domain/identifiers.js';
import { type ServiceSpec, loadServices, routeService } from '../../service/services-file.js';
import { stateQuery } from '../../workflows/healing-messages.js';
import { SERVICE_ATTRIBUTE } from '../../workflows/search-attributes.js';
import { CliError } from './errors.js';
import { healingNotFound, listHealingWorkflows, queryWithDeadline } from './workflows.js';

export interface HealingTarget {
  host: string;
  kind: string;
  /** The id's service part: null for the legacy id kloros-healing/<host>/<kind>. */
  idService: string | null;
  /** The service's name as people know it (the id's, or the legacy service's when known); null if unknown. */
  service: string | null;
  workflowId: string;
}

export interface TargetRequest {
  command: string;
  host: string;
  kind: string;
  /** --service, validated (parseService); undefined when not given. */
  service: string | undefined;
  /** The command starts the workflow when there is none (symptom, start): never "not found". */
  create?: boolean;
}

type Env = Record<string, string | undefined>;

function target(host: string, kind: string, idService: string | null, service: string | null): HealingTarget {
  return { host, kind, idService, service, workflowId: healingWorkflowId(host, kind, idService) };
}

/**
 * The services the environment describes, when they are those of `host` (the environment's own host:
 * KLR_HOST, else this machine's name) and can be read; null otherwise (healctl on an operator's machine).
 */
export function configuredServices(host: string, env: Env = process.env): ServiceSpec[] | null {
  if (host !== (env.KLR_HOST ?? defaultHostName())) return null;
  if (!env.KLR_SERVICES_FILE?.trim() && !env.KLR_SERVICE_CONFIG?.trim()) return null;
  try {
    const services = loadServices(env);
    return services.length > 0 ? services : null;
  } catch {
    return null;
  }
}

const names = (services: readonly string[]) => services.join(', ');

async function describeOrNull(
  client: Client,
  workflowId: string,
): Promise<WorkflowExecutionDescription | null> {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/**
 * The name of the service a legacy-id workflow heals: its KlrService search attribute where the namespace
 * has it, else its state query (null when no worker answers, or the worker has not named it).
 */
async function legacyServiceName(
  client: Client,
  command: string,
  host: string,
  workflowId: string,
  described?: WorkflowExecutionDescription,
): Promise<string | null> {
  const fromAttribute = described?.typedSearchAttributes.get(SERVICE_ATTRIBUTE);
  if (fromAttribute) return fromAttribute;
  try {
    const view = await queryWithDeadline(client, { command, host, workflowId }, () =>
      client.workflow.getHandle(workflowId).query(stateQuery),
    );
    return view.service ?? null;
  } catch {
    return null;
  }
}

/** The services that have a running workflow for `kind` on `host`, by name ("(legacy)" while unnamed). */
async function servicesWithKind(client: Client, command: string, host: string, kind: string) {
  const rows = await listHealingWorkflows(client, host, false, kind);
  const found = new Map<string, { idService: string | null }>();
  for (const row of rows) {
    const name = row.legacyId
      ? (row.service ?? (await legacyServiceName(client, command, host, row.workflowId)))
      : row.service;
    found.set(name ?? '(legacy ids, service not named yet)', {
      idService: row.legacyId ? null : row.service,
    });
  }
  return found;
}

/** The host's legacy service's name, from any of its legacy-id workflows (for a kind it has none of yet). */
async function hostLegacyServiceName(client: Client, command: string, host: string): Promise<string | null> {
  const legacy = (await listHealingWorkflows(client, host)).filter((w) => w.legacyId);
  const named = legacy.find((w) => w.service !== null);
  if (named) return named.service;
  const first = legacy[0];
  return first ? legacyServiceName(client, command, host, first.workflowId) : null;
}

export async function resolveHealingTarget(
  client: Client,
  request: TargetRequest,
  env: Env = process.env,
): Promise<HealingTarget> {
  const { command, host, kind, service } = request;
  const configured = configuredServices(host, env);
  const legacyId = healingWorkflowId(host, kind);

  if (service !== undefined) {
    if (configured) {
      const routed = routeService(configured, service);
      if (!routed.ok) throw new CliError(`healctl ${command}: ${routed.error} (${servicesSource(env)})`);
      return target(host, kind, routed.service, service);
    }
    if (await describeOrNull(client, healingWorkflowId(host, kind, service)))
      return target(host, kind, service, service);
    const legacy = await describeOrNull(client, legacyId);
    if (legacy && (await legacyServiceName(client, command, host, legacyId, legacy)) === service)
      return target(host, kind, null, service);
    if (request.create) {
      // A kind new to the host: the legacy service keeps the ids without a service for every kind.
      if (!legacy && (await hostLegacyServiceName(client, command, host)) === service)
        return target(host, kind, null, service);
      return target(host, kind, service, service);
    }
    const found = [...(await servicesWithKind(client, command, host, kind)).keys()];
    if (found.length === 0) throw healingNotFound(command, host, kind, service);
    throw new CliError(
      `healctl ${command}: no healing workflow of service "${service}" for ${kind} on ${host} (${healingWorkflowId(host, kind, service)}); ` +
        `${kind} on ${host} has one for: ${names(found)} (--service one of: ${names(found)})`,
    );
  }

  if (request.create && configured) {
    const routed = routeService(configured, null);
    if (!routed.ok) {
      throw new CliError(
        `healctl ${command}: ${routed.error} (${servicesSource(env)}): --service one of: ${names(configured.map((s) => s.name))}`,
      );
    }
    const spec = configured.find((s) => (s.legacyIds ? null : s.name) === routed.service);
    return target(host, kind, routed.service, spec?.name ?? null);
  }
  const legacy = await describeOrNull(client, legacyId);
  if (legacy?.status.name === 'RUNNING')
    return target(host, kind, null, legacy.typedSearchAttributes.get(SERVICE_ATTRIBUTE) ?? null);
  // A symptom or start must not fail where visibility lacks the search attributes (a bare server): the
  // legacy id, as before several services.
  const withKind = await servicesWithKind(client, command, host, kind).catch((err: unknown) => {
    if (request.create) return new Map<string, { idService: string | null }>();
    throw err;
  });
  const named = [...withKind.entries()].filter(([, v]) => v.idService !== null);
  if (named.length === 1) return target(host, kind, named[0]![1].idService, named[0]![0]);
  if (named.length > 1) {
    const list = names(named.map(([name]) => name));
    throw new CliError(
      `healctl ${command}: ${host} runs ${kind} healing for several services (${list}): say which with --service one of: ${list}`,
    );
  }
  if (legacy || request.create)
    return target(host, kind, null, legacy?.typedSearchAttributes.get(SERVICE_ATTRIBUTE) ?? null);
  throw healingNotFound(command, host, kind);
}

function servicesSource(env: Env): string {
  return env.KLR_SERVICES_FILE?.trim()
    ? `services file ${env.KLR_SERVICES_FILE.trim()}`
    : `KLR_SERVICE_CONFIG's one service`;
}
