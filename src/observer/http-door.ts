// The HTTP door: for services that cannot speak Temporal. POST /v1/symptoms takes one symptom as JSON,
// POST /v1/alertmanager takes Alertmanager's webhook; both need the bearer token, and both hand what they
// accept to the same delivery as the observer's own symptoms — so 202 means delivered or durably spooled.
// GET /healthz says whether the door is up and how full the spool is.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { HOST_EXPECTED, SERVICE_EXPECTED, SERVICE_PATTERN, isValidHost } from '../domain/identifiers.js';
import { type ServiceSpec, routeService } from '../service/services-file.js';
import { describeIssues, symptomSchema } from '../domain/symptom.js';
import { alertToSymptom, webhookSchema } from './alertmanager.js';
import {
  type IdentifiedSymptom,
  type SymptomDelivery,
  SpoolFullError,
  type SubmitOutcome,
  symptomProblem,
} from './delivery.js';
import type { HttpDoorSettings } from './observer-settings.js';
import { TokenBucket } from './token-bucket.js';
import { quotedValue } from '../domain/quoted-value.js';

export interface HttpDoorLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface HttpDoorOptions {
  settings: HttpDoorSettings;
  /** Where accepted symptoms go. */
  delivery: Pick<SymptomDelivery, 'submit' | 'stats'>;
  /** The host a symptom is for when the request names none. */
  host: string;
  /**
   * The host's services, to route a service label to (routeService): a label must name one of them; none
   * named goes to the legacy service (a one-service host: its only one). None configured: taken as it is.
   */
  services?: readonly Pick<ServiceSpec, 'name' | 'legacyIds'>[];
  log: HttpDoorLog;
  /** The clock, for the rate limit (tests may pass their own). */
  now?: () => number;
  /** Told of each answer and each connection closed at the cap (the observer's metrics count them). */
  events?: HttpDoorEvents;
}

export interface HttpDoorEvents {
  answered(status: number): void;
  connectionDropped(): void;
}

export interface HttpDoor {
  /** `http://127.0.0.1:8787` — the address actually bound (the port is real even when 0 was asked). */
  url: string;
  address: AddressInfo;
  close(): Promise<void>;
}

const ROUTES: Record<string, string> = {
  '/v1/symptoms': 'POST',
  '/v1/alertmanager': 'POST',
  '/healthz': 'GET',
};

/** Thrown while handling a request: the answer to send. */
class Answer extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.error === 'string' ? body.error : `HTTP ${status}`);
  }
}

/** Constant-time comparison of the presented token with the expected one (lengths hidden by hashing). */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** `application/json`, `application/json; charset=utf-8`, `application/alertmanager+json`… */
export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const type = header.split(';')[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || /^application\/[a-z0-9.+-]*\+json$/.test(type);
}

/** A reason such as `details.allocMb: expected a size ≥ 0 MiB` split into the field and what it expects. */
export function fieldAndExpected(reason: string): { field: string; expected: string } {
  const first = reason.split('; ')[0] ?? reason;
  const colon = first.indexOf(': ');
  if (colon <= 0) return { field: 'payload', expected: first };
  return { field: first.slice(0, colon), expected: first.slice(colon + 2) };
}

function badRequest(reason: string, extra: Record<string, unknown> = {}): Answer {
  return new Answer(400, { error: reason, ...fieldAndExpected(reason), ...extra });
}

/** Most characters of a refused service label echoed back (a 10 kB label is not worth repeating). */
const MAX_ECHOED_LABEL = 80;

/**
 * The workflow-id service of a symptom labelled `label` (null: unlabelled), by routeService; or why it
 * cannot be routed, naming the configured services, and never echoing more than a short part of the label.
 */
export function routeLabel(
  services: readonly Pick<ServiceSpec, 'name' | 'legacyIds'>[],
  label: string | null,
): { ok: true; service: string | null } | { ok: false; error: string; expected: string } {
  const names = services.map((s) => s.name);
  const choices = names.length > 0 ? `one of ${names.map((n) => JSON.stringify(n)).join(', ')}` : null;
  if (label !== null && !SERVICE_PATTERN.test(label)) {
    const shown = quotedValue(label, MAX_ECHOED_LABEL);
    return {
      ok: false,
      error: `service ${shown}: expected ${SERVICE_EXPECTED}${choices ? `, ${choices}` : ''}`,
      expected: choices ?? SERVICE_EXPECTED,
    };
  }
  const routed = routeService(services, label);
  if (routed.ok) return routed;
  return { ok: false, error: routed.error, expected: choices ?? SERVICE_EXPECTED };
}

export async function startHttpDoor(options: HttpDoorOptions): Promise<HttpDoor> {
  const { settings, delivery, log, host, events } = options;
  const services = options.services ?? [];
  const serviceNames = services.map((s) => s.name);
  const now = options.now ?? Date.now;
  const bucket = new TokenBucket(settings.burst, settings.ratePerSecond, now());

  const server: Server = createServer((req, res) => {
    const started = Date.now();
    void handle(req, res).then(
      (status) => {
        events?.answered(status);
        log.info({ method: req.method, path: pathOf(req), status, ms: Date.now() - started }, 'http door');
      },
      (err: unknown) => {
        log.error(
          { method: req.method, path: pathOf(req), error: (err as Error).message },
          'http door failed',
        );
        if (!res.headersSent)
          events?.answered(send(res, 500, { error: 'internal error; see the observer log' }));
      },
    );
  });
  // A slow or stalled client must not hold a connection for ever. Node's headersTimeout and requestTimeout
  // only watch a request once its first byte has arrived; a connection that sends nothing, stalls between
  // bytes, or idles between kept-alive requests is closed by the idle timeout below instead.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = settings.idleTimeoutMs;
  // Sockets whose silence is ours, not the client's: the door is waiting for the delivery (Temporal may
  // take up to KLR_OBSERVER_DELIVERY_TIMEOUT) and will answer. Counted: pipelined requests share a socket.
  const working = new Map<Socket, number>();
  server.setTimeout(settings.idleTimeoutMs, (socket: Socket) => {
    if (!working.has(socket)) socket.destroy();
  });
  // Beyond the cap Node closes a new connection as soon as it is accepted; those open keep working.
  server.maxConnections = settings.maxConnections;
  let dropped = 0;
  let droppedWarnedAt = -Infinity;
  server.on('drop', () => {
    events?.connectionDropped();
    dropped += 1;
    if (Date.now() - droppedWarnedAt < 60_000) return; // a flood of them: one line a minute
    log.warn(
      { dropped, maxConnections: settings.maxConnections },
      'http door: connection cap reached, new connections closed (KLR_HTTP_DOOR_MAX_CONNECTIONS)',
    );
    droppedWarnedAt = Date.now();
    dropped = 0;
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    try {
      const answer = await route(req);
      return send(res, answer.status, answer.body, answer.headers);
    } catch (err) {
      if (!(err instanceof Answer)) throw err;
      // An answer sent before the body was read (401, 413, …): close the connection rather than read it.
      const unread = !req.complete;
      return send(res, err.status, err.body, { ...err.headers, ...(unread ? { connection: 'close' } : {}) });
    }
  }

  async function route(req: IncomingMessage): Promise<Answer> {
    const path = pathOf(req);
    const method = ROUTES[path];
    if (!method) throw new Answer(404, { error: `no such endpoint ${path}; try POST /v1/symptoms` });
    if (req.method !== method) {
      throw new Answer(405, { error: `${path} takes ${method}` }, { allow: method });
    }
    if (path === '/healthz') {
      const { pending, pendingBytes, maxBytes, spoolFull, unreachable } = delivery.stats();
      return new Answer(200, {
        ok: true,
        temporalReachable: unreachable === null,
        spool: { pending, pendingBytes, maxBytes, full: spoolFull },
      });
    }
    authorize(req);
    if (!isJsonContentType(req.headers['content-type'])) {
      throw new Answer(415, { error: 'expected Content-Type: application/json' });
    }
    // Every request takes a token before its body is read; one that carries more symptoms takes the rest
    // once they are counted (see admit).
    const take = bucket.take(now());
    if (!take.ok) throw tooMany('too many requests', take.retryAfterMs);
    const body = await readJson(req, settings.maxBodyBytes);
    return path === '/v1/symptoms' ? acceptSymptom(req, body) : acceptAlerts(req, body);
  }

  /**
   * A request carrying `n` symptoms needs `n` tokens, the one it took on arrival included: all of them or
   * none is taken. All or none, because a refused webhook is sent again whole by Alertmanager (at its
   * next group_interval), while accepting part of it would leave the rest to chance. More than the bucket
   * holds can never be admitted: that is a 413 saying which setting to raise.
   */
  function admit(n: number): void {
    if (n <= 1) return;
    if (n > settings.burst) {
      const error =
        `${n} firing alerts in one request, more than the ${settings.burst} symptoms the door admits at ` +
        'once (KLR_HTTP_DOOR_BURST); none was delivered: raise KLR_HTTP_DOOR_BURST or group the alerts ' +
        'finer (group_by)';
      log.warn({ alerts: n, burst: settings.burst }, error); // a misconfiguration, not back-pressure
      throw new Answer(413, { error });
    }
    const take = bucket.take(now(), n - 1);
    // At the retry the request takes its first token again: wait until all n are there.
    if (!take.ok) throw tooMany(`${n} firing alerts need ${n} tokens; none was delivered`, bucket.waitMs(n));
  }

  function tooMany(what: string, retryAfterMs: number): Answer {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    return new Answer(
      429,
      {
        error: `${what}: over the rate limit (KLR_HTTP_DOOR_RATE, KLR_HTTP_DOOR_BURST); retry in ${seconds} s`,
      },
      { 'retry-after': String(seconds) },
    );
  }

  /**
   * The delivery's own check of a symptom, run here first for one reason: a payload that makes the check
   * itself throw (an event time no Date can hold, say) is the sender's fault — a 400, never a 500. What the
   * check merely refuses is left to the delivery, which records it with the reason (dead-letter file).
   * Returns why the payload cannot be checked, or null.
   */
  function uncheckable(to: string, symptom: IdentifiedSymptom): string | null {
    try {
      symptomProblem(to, symptom, Date.now());
      return null;
    } catch (err) {
      const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      log.warn({ id: symptom.id, error: reason }, 'http door: a payload that cannot be checked');
      return `payload: cannot be read as a symptom (${reason})`;
    }
  }

  function authorize(req: IncomingMessage): void {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m?.[1] || !tokenMatches(m[1], settings.token)) {
      throw new Answer(
        401,
        { error: 'missing or wrong bearer token (Authorization: Bearer <KLR_HTTP_DOOR_TOKEN>)' },
        { 'www-authenticate': 'Bearer realm="kloros"' },
      );
    }
  }

  async function acceptSymptom(req: IncomingMessage, body: unknown): Promise<Answer> {
    const url = new URL(req.url ?? '/', 'http://door');
    const to = url.searchParams.get('host') ?? host;
    if (!isValidHost(to)) throw badRequest(`host: expected ${HOST_EXPECTED}`);
    const routed = routeLabel(services, url.searchParams.get('service'));
    if (!routed.ok)
      throw new Answer(400, {
        error: routed.error,
        field: 'service',
        expected: routed.expected,
        services: serviceNames,
      });
    const service = routed.service;
    const headerId = req.headers['idempotency-key'];
    const withDefaults =
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? { source: 'http', ...(typeof headerId === 'string' ? { id: headerId } : {}), ...body }
        : body;
    const parsed = symptomSchema.safeParse(withDefaults);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const issues = parsed.error.issues.slice(0, 10).map((i) => ({
        field: i.path.length > 0 ? i.path.join('.') : 'payload',
        expected: i.code === 'unrecognized_keys' ? `no field(s) ${i.keys.join(', ')}` : i.message,
      }));
      throw new Answer(400, {
        error: describeIssues(parsed.error.issues),
        field: issues[0]?.field ?? 'payload',
        expected: issues[0]?.expected ?? first?.message ?? 'a symptom',
        issues,
      });
    }
    // Without an id a retry of this request would count twice: give it one, and tell the caller.
    const symptom = {
      ...(withDefaults as object),
      id: parsed.data.id ?? `http:${randomUUID()}`,
    } as IdentifiedSymptom;
    const cannot = uncheckable(to, symptom);
    if (cannot !== null) throw badRequest(cannot, { id: symptom.id });
    const outcome = await submit(req, symptom, to, service);
    if (outcome.status === 'rejected') throw badRequest(outcome.reason, { id: outcome.id });
    return new Answer(202, accepted(outcome));
  }

  async function acceptAlerts(req: IncomingMessage, body: unknown): Promise<Answer> {
    const parsed = webhookSchema.safeParse(body);
    if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues));
    const firing = parsed.data.alerts.filter((a) => a.status === 'firing');
    const skipped: { fingerprint: string; reason: string }[] = [];
    // By id: the same alert twice in one webhook is one symptom, and costs one token.
    const symptoms = new Map<
      string,
      { symptom: IdentifiedSymptom; host: string; service: string | null; fingerprint: string }
    >();
    for (const alert of firing) {
      const converted = alertToSymptom(alert, {
        kindLabel: settings.kindLabel,
        defaultHost: host,
        serviceLabel: settings.serviceLabel,
      });
      if (!converted.ok) {
        skipped.push({ fingerprint: converted.fingerprint, reason: converted.reason });
        continue;
      }
      // The alert's service label routes it, by the same rules as ?service= (its problem is this alert's).
      const routed = routeLabel(services, converted.service);
      if (!routed.ok) {
        skipped.push({
          fingerprint: alert.fingerprint,
          reason: `label ${settings.serviceLabel}: ${routed.error}`,
        });
        continue;
      }
      const cannot = uncheckable(converted.host, converted.symptom);
      if (cannot !== null) skipped.push({ fingerprint: alert.fingerprint, reason: cannot });
      else
        symptoms.set(converted.symptom.id, {
          ...converted,
          service: routed.service,
          fingerprint: alert.fingerprint,
        });
    }
    admit(symptoms.size);
    const ids: string[] = [];
    for (const { symptom, host: to, service, fingerprint } of symptoms.values()) {
      const outcome = await submit(req, symptom, to, service);
      if (outcome.status === 'rejected') skipped.push({ fingerprint, reason: outcome.reason });
      else ids.push(outcome.id);
    }
    if (skipped.length > 0) log.warn({ skipped }, 'alertmanager alerts skipped');
    const result = { accepted: ids.length, ids, ignored: parsed.data.alerts.length - firing.length, skipped };
    // Every firing alert unusable is a misconfiguration: a 4xx shows up in Alertmanager's own logs.
    if (firing.length > 0 && ids.length === 0) {
      throw new Answer(400, { error: 'no firing alert could become a symptom', ...result });
    }
    return new Answer(202, result);
  }

  async function submit(
    req: IncomingMessage,
    symptom: IdentifiedSymptom,
    to: string,
    service: string | null,
  ): Promise<SubmitOutcome> {
    const socket = req.socket;
    working.set(socket, (working.get(socket) ?? 0) + 1);
    try {
      return await delivery.submit(symptom, to, service);
    } catch (err) {
      if (err instanceof SpoolFullError) {
        throw new Answer(503, { error: err.message }, { 'retry-after': '30' });
      }
      throw err;
    } finally {
      const left = (working.get(socket) ?? 1) - 1;
      if (left > 0) working.set(socket, left);
      else working.delete(socket);
    }
  }

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(settings.listen.port, settings.listen.host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${urlHost}:${address.port}`;
  log.info({ url }, 'http door listening');
  return {
    url,
    address,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeIdleConnections();
      }),
  };
}

function accepted(outcome: SubmitOutcome): Record<string, unknown> {
  // The service is named only when there is one: the legacy ids' answer is what it always was.
  const service = outcome.service ? { service: outcome.service } : {};
  if (outcome.status === 'delivered') {
    return {
      accepted: true,
      id: outcome.id,
      host: outcome.host,
      ...service,
      delivered: true,
      ...(outcome.result ? { count: outcome.result.count24h } : {}),
    };
  }
  return { accepted: true, id: outcome.id, host: outcome.host, ...service, delivered: false, spooled: true };
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

function send(
  res: ServerResponse,
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): number {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
  return status;
}

/** Reads a JSON body of at most `limit` bytes; a larger one is refused (413) as soon as that is known. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  // Events rather than `for await`: leaving that loop early would destroy the socket before the 413 is sent.
  const chunks = await new Promise<Buffer[]>((resolveBody, reject) => {
    const got: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      got.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolveBody(got);
    };
    // The client went away before the whole body came (it aborted, or was closed for idling): nobody is
    // there to answer, but the request must still end, and not as an internal failure.
    const onGone = (err?: Error) => {
      cleanup();
      reject(badRequest(`payload: the request body did not arrive (${err?.message ?? 'connection closed'})`));
    };
    const onClose = () => onGone();
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
    if (req.destroyed) onGone(); // closed before we listened: no event will come
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw badRequest('payload: expected a JSON body');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`payload: expected valid JSON (${(err as Error).message})`);
  }
}

function tooLarge(limit: number): Answer {
  return new Answer(413, { error: `request body larger than ${limit} bytes (KLR_HTTP_DOOR_MAX_BODY_BYTES)` });
}
