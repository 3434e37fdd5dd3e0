// The systemd units for a GPU host: `systemd-analyze verify` where systemd's tools are installed (any
// warning about our files fails), and always a parser check of what the units must say — sections,
// hardening, restart policy, the entry points they start exist in the repository — and that the
// EnvironmentFile example lists every KLR_* setting the code reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, constants, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from '../support/heal-stack.js';

const DIR = join(REPO_ROOT, 'deploy', 'systemd');
const UNITS = {
  worker: join(DIR, 'kloros-healing-worker.service'),
  observer: join(DIR, 'kloros-healing-observer.service'),
};
const ENV_FILE = join(DIR, 'kloros-healing.env');

type Unit = Record<string, Record<string, string[]>>;

/** A unit file's sections → key → values (a key may repeat); comments and blank lines dropped. */
export function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: string | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      unit[section] ??= {};
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv || section === null) throw new Error(`line ${i + 1}: not "Key=value" inside a section: ${raw}`);
    (unit[section]![kv[1]!] ??= []).push(kv[2]!);
  });
  return unit;
}

const one = (unit: Unit, section: string, key: string) => unit[section]?.[key]?.join(' ') ?? '';

/** Runs systemd-analyze verify; null where systemd's tools are not installed. */
async function verify(paths: string[]): Promise<{ exitCode: number; stderr: string } | null> {
  const r = await execa('systemd-analyze', ['verify', ...paths], { reject: false, cwd: tmpdir() });
  if ((r as { code?: string }).code === 'ENOENT') return null;
  return { exitCode: r.exitCode ?? 1, stderr: r.stderr };
}

test('the unit parser reads sections and repeated keys, and rejects a key outside a section', () => {
  const u = parseUnit('# c\n[Unit]\nAfter=a\nAfter=b\n\n[Service]\nExecStart=/bin/x y\n');
  assert.deepEqual(u, { Unit: { After: ['a', 'b'] }, Service: { ExecStart: ['/bin/x y'] } });
  assert.throws(() => parseUnit('ExecStart=/bin/x\n'), /line 1/);
});

for (const [name, path] of Object.entries(UNITS)) {
  test(`${name} unit: network-online, kloros user, restart on failure, hardening, entry point in the repo`, async () => {
    const unit = parseUnit(await readFile(path, 'utf8'));
    assert.deepEqual(Object.keys(unit).sort(), ['Install', 'Service', 'Unit']);
    assert.match(one(unit, 'Unit', 'After'), /network-online\.target/);
    assert.match(one(unit, 'Unit', 'Wants'), /network-online\.target/);
    assert.equal(one(unit, 'Install', 'WantedBy'), 'multi-user.target');
    assert.equal(one(unit, 'Service', 'User'), 'kloros');
    assert.equal(one(unit, 'Service', 'Restart'), 'on-failure');
    assert.equal(
      one(unit, 'Service', 'RestartPreventExitStatus'),
      '2',
      'settings errors (exit 2) are not retried',
    );
    assert.equal(one(unit, 'Service', 'NoNewPrivileges'), 'true');
    assert.equal(one(unit, 'Service', 'ProtectSystem'), 'strict');
    assert.equal(one(unit, 'Service', 'PrivateTmp'), 'true');
    const rw = one(unit, 'Service', 'ReadWritePaths').split(/\s+/);
    assert.ok(rw.includes('/var/lib/kloros-healing'), 'the data dir is writable');
    if (name === 'worker') assert.ok(rw.includes('/etc/vllm'), 'the vLLM config dir is writable');
    assert.equal(one(unit, 'Service', 'EnvironmentFile'), '/etc/kloros-healing/kloros-healing.env');
    const workDir = one(unit, 'Service', 'WorkingDirectory');
    assert.equal(workDir, '/opt/kloros-healing');
    const exec = one(unit, 'Service', 'ExecStart').split(/\s+/);
    // Built JavaScript (npm run build), no tsx in production: the entry's source must exist.
    assert.equal(exec.length, 2, 'node and the entry point, nothing else');
    assert.equal(exec[0], '/usr/bin/node');
    const entry = exec[1]!;
    assert.equal(entry, name === 'worker' ? 'dist/workers/main.js' : 'dist/observer/main.js');
    const source = entry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
    await access(join(REPO_ROOT, source), constants.R_OK).catch(() =>
      assert.fail(`${name}: ExecStart runs ${entry} (relative to ${workDir}), built from ${source}: missing`),
    );
  });
}

test('systemd-analyze verify accepts both units without a warning (where systemd is installed)', async (t) => {
  const r = await verify(Object.values(UNITS));
  if (r === null) {
    t.diagnostic('systemd-analyze not installed: the parser checks above stand in for it');
    return;
  }
  assert.equal(r.exitCode, 0, r.stderr);
  const ours = r.stderr.split('\n').filter((l) => l.includes('kloros-healing-'));
  assert.deepEqual(ours, [], 'warnings about our units');
  // The same check flags a unit with a misspelt key (so it can fail).
  const dir = await mkdtemp(join(tmpdir(), 'klr-units-'));
  try {
    const bad = join(dir, 'kloros-healing-bad.service');
    await writeFile(
      bad,
      (await readFile(UNITS.worker, 'utf8')).replace('NoNewPrivileges=', 'NoNewPrivilege='),
    );
    const r2 = await verify([bad]);
    assert.ok(
      r2 && r2.stderr.split('\n').some((l) => l.includes('kloros-healing-bad') && /NoNewPrivilege/.test(l)),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (e) =>
      e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    ),
  );
  return nested.flat();
}

test('the EnvironmentFile example names every KLR_* setting the worker and observer read', async () => {
  const env = await readFile(ENV_FILE, 'utf8');
  const listed = new Set([...env.matchAll(/^#?(KLR_[A-Z0-9_]+)=/gm)].map((m) => m[1]!));
  const read = new Set<string>();
  for (const file of await sourceFiles(join(REPO_ROOT, 'src')))
    for (const m of (await readFile(file, 'utf8')).matchAll(/(?:'|env\.)(KLR_[A-Z0-9_]*[A-Z0-9])\b/g))
      if (!m[1]!.startsWith('KLR_TEST_')) read.add(m[1]!);
  assert.ok(read.size > 30, `found ${read.size} settings in src`);
  assert.deepEqual(
    [...read].filter((s) => !listed.has(s)).sort(),
    [],
    'settings missing from deploy/systemd/kloros-healing.env',
  );
  assert.deepEqual(
    [...listed].filter((s) => !read.has(s)).sort(),
    [],
    'settings in the env file that no code reads',
  );
  // Uncommented lines are valid assignments, and no secret is filled in.
  for (const line of env.split('\n').filter((l) => /^[A-Z]/.test(l))) {
    assert.match(line, /^[A-Z][A-Z0-9_]*=\S/, line);
    assert.doesNotMatch(line, /^(TEMPORAL_API_KEY|KLR_HTTP_DOOR_TOKEN)=/, 'no secret value in the example');
  }
});
