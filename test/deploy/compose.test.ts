// docker-compose.temporal.yml as Debian's docker-compose (1.29) reads it, offline (`config` needs no
// engine): the services and images, health checks and start order, the files it mounts exist in the
// repository, ports on loopback, the worker's and observer's Temporal connection and settings, the
// search attributes the one-shot registers, and the Dockerfile it builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, constants, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../support/heal-stack.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';

const COMPOSE_BIN = process.env.KLR_DOCKER_COMPOSE ?? 'docker-compose';
const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.temporal.yml');
const TOKEN = 'compose-test-token-0123456789';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
}

/** This process's environment with `changes` applied (undefined removes a variable); no Docker engine. */
function environment(changes: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string | undefined> = { ...process.env, ...changes };
  env.DOCKER_HOST = 'unix:///nonexistent/docker.sock';
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env as Record<string, string>;
}

async function compose(args: string[], env: Record<string, string | undefined> = {}) {
  const r = await execa(COMPOSE_BIN, ['-f', COMPOSE_FILE, ...args], {
    cwd: REPO_ROOT,
    reject: false,
    all: true,
    env: environment(env),
    extendEnv: false,
  });
  if ((r as { code?: string }).code === 'ENOENT')
    assert.fail(
      `${COMPOSE_BIN} not found: install the Debian package "docker-compose" (sudo apt-get install docker-compose; .ci/run does this), or set KLR_DOCKER_COMPOSE`,
    );
  return r;
}

/** The file as docker-compose resolves it (interpolated, anchors merged, relative paths made absolute). */
async function resolved(): Promise<Record<string, Service>> {
  const r = await compose(['config'], { KLR_HTTP_DOOR_TOKEN: TOKEN });
  assert.equal(r.exitCode, 0, r.all);
  return (parseYaml(r.stdout) as { services: Record<string, Service> }).services;
}

test('docker-compose config accepts the file', async () => {
  const r = await compose(['config', '--quiet'], { KLR_HTTP_DOOR_TOKEN: TOKEN });
  assert.equal(r.exitCode, 0, r.all);
});

test('without KLR_HTTP_DOOR_TOKEN the stack refuses to start, saying what to set', async () => {
  const r = await compose(['config', '--quiet'], { KLR_HTTP_DOOR_TOKEN: undefined });
  assert.notEqual(r.exitCode, 0);
  assert.match(r.all ?? '', /set KLR_HTTP_DOOR_TOKEN/);
});

test('services, pinned images, and their start order', async () => {
  const s = await resolved();
  for (const name of [
    'postgresql',
    'temporal',
    'temporal-setup',
    'temporal-ui',
    'kloros-worker',
    'kloros-observer',
    'prometheus',
    'alertmanager',
    'grafana',
  ])
    assert.ok(s[name], `service ${name}`);
  for (const [name, svc] of Object.entries(s)) {
    if (!svc.image) continue;
    assert.match(svc.image, /:[^:]+$/, `${name}: image tag pinned`);
    assert.doesNotMatch(svc.image, /:latest$/, `${name}: no :latest`);
  }
  assert.match(s.temporal!.image!, /^temporalio\/auto-setup:/);
  assert.equal(s.temporal!.environment!.DB, 'postgres12');
  assert.equal(s.temporal!.environment!.POSTGRES_SEEDS, 'postgresql');
  assert.equal(s.temporal!.depends_on!.postgresql!.condition, 'service_healthy');
  assert.ok(s.postgresql!.healthcheck);
  assert.match(s['temporal-ui']!.image!, /^temporalio\/ui:/);
  for (const name of ['kloros-worker', 'kloros-observer', 'temporal-ui'])
    assert.equal(
      s[name]!.depends_on!['temporal-setup']?.condition,
      'service_completed_successfully',
      `${name} starts once the search attributes are registered`,
    );
  assert.equal(s.grafana!.depends_on!.prometheus!.condition, 'service_healthy');
  for (const name of ['kloros-worker', 'kloros-observer', 'prometheus', 'alertmanager', 'grafana'])
    assert.ok(s[name]!.healthcheck?.test.length, `${name}: healthcheck`);
});

test('the worker and observer: built from the repo, Temporal by TEMPORAL_* env, the entry points', async () => {
  const s = await resolved();
  const worker = s['kloros-worker']!;
  assert.ok(worker.build, 'the worker is built');
  const dockerfile = join(worker.build.context, worker.build.dockerfile);
  assert.equal(relative(REPO_ROOT, worker.build.context), '');
  const text = await readFile(dockerfile, 'utf8');
  assert.match(text, /^FROM node:20-bookworm-slim$/m);
  assert.match(text, /npm ci --omit=dev/);
  assert.match(text, /RUN npm run build/, 'the image runs built JavaScript');
  assert.match(text, /^USER node$/m);
  assert.deepEqual(worker.command, ['node', 'dist/workers/main.js']);
  assert.deepEqual(s['kloros-observer']!.command, ['node', 'dist/observer/main.js']);
  assert.equal(s['kloros-observer']!.image, worker.image, 'the observer runs the worker’s image');
  for (const name of ['kloros-worker', 'kloros-observer']) {
    const env = s[name]!.environment!;
    assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233', `${name}: TEMPORAL_ADDRESS`);
    assert.equal(env.TEMPORAL_NAMESPACE, 'default');
    assert.equal(env.KLR_HOST, 'lab-gpu-1');
    // The image runs dist/ (built in the image): its source must be in the repository.
    const entry = s[name]!.command!.at(-1)!;
    await access(join(REPO_ROOT, entry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')), constants.R_OK);
  }
  assert.equal(worker.environment!.KLR_METRICS_ADDR, '0.0.0.0:9464');
  assert.equal(worker.environment!.KLR_SDK_METRICS_ADDR, '0.0.0.0:9465');
  const observer = s['kloros-observer']!.environment!;
  assert.equal(observer.KLR_HTTP_DOOR, '1');
  assert.equal(observer.KLR_OBSERVER_METRICS_ADDR, '0.0.0.0:9466');
  assert.equal(observer.KLR_HTTP_DOOR_TOKEN, TOKEN);
  assert.equal(s.alertmanager!.environment!.KLR_HTTP_DOOR_TOKEN, TOKEN);
  // The Prometheus config scrapes the worker by its service name and the ports it serves on.
  const prom = parseYaml(await readFile(join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = prom.scrape_configs.flatMap((j) => j.static_configs.flatMap((c) => c.targets));
  assert.ok(targets.includes('kloros-worker:9464') && targets.includes('kloros-worker:9465'));
  assert.ok(targets.includes('kloros-observer:9466'), "and the observer's /metrics");
  // The Alertmanager door receiver points at the observer service.
  const am = await readFile(join(REPO_ROOT, 'deploy/alertmanager/alertmanager.yml'), 'utf8');
  assert.match(am, /url: http:\/\/kloros-observer:8787\/v1\/alertmanager/);
});

test('every file the stack mounts exists in the repository', async () => {
  const s = await resolved();
  const mounted: string[] = [];
  for (const [name, svc] of Object.entries(s))
    for (const v of svc.volumes ?? []) {
      const source = v.split(':')[0]!;
      if (!isAbsolute(source)) continue; // a named volume
      const rel = relative(REPO_ROOT, source);
      assert.ok(!rel.startsWith('..'), `${name}: ${source} is outside the repository`);
      await access(source, constants.R_OK).catch(() =>
        assert.fail(`${name}: mounts ${rel}, which is missing`),
      );
      mounted.push(rel);
    }
  for (const f of [
    'deploy/prometheus',
    'deploy/alertmanager',
    'deploy/grafana/kloros-healing.json',
    'deploy/grafana/provisioning/datasources',
    'deploy/grafana/provisioning/dashboards',
    'deploy/temporal/register-search-attributes.sh',
  ])
    assert.ok(mounted.includes(f), `${f} is mounted (mounted: ${mounted.join(', ')})`);
});

test('ports: every published port binds to loopback', async () => {
  const s = await resolved();
  const published: Record<string, string[]> = {};
  for (const [name, svc] of Object.entries(s))
    for (const p of svc.ports ?? []) {
      assert.match(p, /^127\.0\.0\.1:\d+:\d+(\/tcp)?$/, `${name}: ${p}`);
      (published[name] ??= []).push(p.split(':')[1]!);
    }
  assert.deepEqual(published.temporal, ['7233']);
  assert.deepEqual(published['temporal-ui'], ['8080']);
  assert.deepEqual(published.grafana, ['3000']);
  assert.deepEqual(published.prometheus, ['9090']);
  assert.deepEqual(published.alertmanager, ['9093']);
  assert.deepEqual(published['kloros-worker'], ['9464', '9465']);
  assert.deepEqual(published['kloros-observer'], ['8787', '9466']);
});

test('the one-shot registers exactly the search attributes the workflows use, with their types', async () => {
  const script = await readFile(join(REPO_ROOT, 'deploy/temporal/register-search-attributes.sh'), 'utf8');
  const registered = Object.fromEntries(
    [...script.matchAll(/^register (\w+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  assert.deepEqual(registered, SEARCH_ATTRIBUTE_TYPES);
  const r = await execa('sh', ['-n', join(REPO_ROOT, 'deploy/temporal/register-search-attributes.sh')], {
    reject: false,
    all: true,
  });
  assert.equal(r.exitCode, 0, `sh -n: ${r.all}`);
});

test('.dockerignore keeps node_modules, data and git out of the build context', async () => {
  const lines = (await readFile(join(REPO_ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', '.git', '.data']) assert.ok(lines.includes(entry), entry);
  for (const needed of ['src', 'bin', 'sim', 'package.json', 'package-lock.json'])
    assert.ok(!lines.includes(needed), `${needed} must reach the image`);
});
