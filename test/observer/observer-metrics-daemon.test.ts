// The observer daemon's own /metrics, on the real process (src/observer/main.ts): it follows a log that holds
// a real vLLM OOM line (test/fixtures/real-logs), Temporal cannot be reached, and a scrape over loopback
// shows the lines read, the incident, the symptom spooled, the connection errors and the spool's depth;
// a real Xid line appended later moves them again. A bad or taken metrics address stops it with one line.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { pickFreePort } from '../../src/servers/dev-server.js';
import { OBSERVER_METRICS as M } from '../../src/observer/observer-metrics.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { type Exposition, scrape, valueOf } from '../support/metrics-text.js';
import { OBSERVER_MAIN as MAIN, startObserverProcess } from '../support/observer-process.js';
import { waitFor } from '../support/observer-stack.js';

const REAL_LOGS = join(REPO_ROOT, 'test', 'fixtures', 'real-logs');
/** vLLM 0.11's PyTorch OOM, one line (test/fixtures/real-logs/manifest.json: vllm_oom, torch_oom). */
const OOM_LOG = join(REAL_LOGS, 'vllm', 'v0110-torch-oom-bare-line.log');
/** A kernel Xid 145 line (manifest: gpu_xid, gpu_xid). */
const XID_LOG = join(REAL_LOGS, 'kernel', 'xid145-nvlink-nonfatal-pci-domain-0018.log');
const TOKEN = 'metrics-test-token-0123456789';

let dir: string;
/** A port nothing listens on: Temporal is "down" for the whole file. */
let temporalPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-obs-metrics-daemon-'));
  temporalPort = await pickFreePort();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string>): Record<string, string> {
  return {
    KLR_HOST: 'metrics-gpu',
    KLR_DATA_DIR: dir,
    TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
    KLR_OBSERVER_DELIVERY_TIMEOUT: '1',
    ...extra,
  };
}

/** A fixture's text as whole lines (a followed file's last line counts once it has its newline). */
async function wholeLines(path: string): Promise<{ text: string; lines: number }> {
  const raw = await readFile(path, 'utf8');
  const text = raw.endsWith('\n') ? raw : `${raw}\n`;
  return { text, lines: text.split('\n').length - 1 };
}

test('a real OOM line, Temporal away: lines read, the incident, the symptom spooled, errors and depth on /metrics', async () => {
  const log = join(dir, 'vllm.log');
  const oom = await wholeLines(OOM_LOG);
  await writeFile(log, oom.text);
  const metricsPort = await pickFreePort();
  const daemon = await startObserverProcess(
    env({
      KLR_OBSERVER_FILE: log,
      KLR_OBSERVER_FROM_START: '1',
      KLR_OBSERVER_METRICS_ADDR: `127.0.0.1:${metricsPort}`,
      KLR_HTTP_DOOR: '1',
      KLR_HTTP_DOOR_ADDR: '127.0.0.1:0',
      KLR_HTTP_DOOR_TOKEN: TOKEN,
    }),
  );
  try {
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    assert.equal(daemon.metricsUrl, url);
    const v = (e: Exposition, name: string, labels: Record<string, string> = {}) => valueOf(e, name, labels);

    let e = await waitFor('the OOM spooled', async () => {
      const now = await scrape(url);
      return v(now, M.spooled.name) === 1 ? now : undefined;
    });
    assert.equal(v(e, M.linesRead.name, { source: 'file', service: '' }), oom.lines);
    assert.equal(v(e, M.linesTruncated.name, { source: 'file', service: '' }), 0);
    assert.equal(v(e, M.incidents.name, { kind: 'vllm_oom', family: 'torch_oom', service: '' }), 1);
    assert.equal(v(e, M.delivered.name), 0);
    assert.ok((v(e, M.deliveryErrors.name, { reason: 'connect' }) ?? 0) >= 1, 'Temporal cannot be reached');
    assert.equal(v(e, M.deliveryErrors.name, { reason: 'rejected' }), 0);
    assert.equal(v(e, M.spoolPending.name), 1);
    assert.ok((v(e, M.spoolPendingBytes.name) ?? 0) > 0);
    assert.equal(v(e, M.spoolMaxBytes.name), 256 * 1024 * 1024);
    assert.equal(e.samples.filter((s) => s.name === 'kloros_build_info').length, 1);

    // More of the log: a kernel Xid line, and a request to the door without its token.
    const xid = await wholeLines(XID_LOG);
    await appendFile(log, xid.text);
    const res = await fetch(`${daemon.doorUrl}/v1/symptoms`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 401);
    e = await waitFor('the Xid spooled', async () => {
      const now = await scrape(url);
      return v(now, M.spooled.name) === 2 ? now : undefined;
    });
    assert.equal(v(e, M.linesRead.name, { source: 'file', service: '' }), oom.lines + xid.lines);
    assert.equal(v(e, M.incidents.name, { kind: 'gpu_xid', family: 'gpu_xid', service: '' }), 1);
    assert.equal(v(e, M.incidents.name, { kind: 'vllm_oom', family: 'torch_oom', service: '' }), 1);
    assert.equal(v(e, M.spoolPending.name), 2);
    assert.equal(v(e, M.doorRequests.name, { code: '401' }), 1);
    assert.equal(v(e, M.doorRequests.name, { code: '202' }), 0);
  } finally {
    await daemon.stop();
  }
  const result = await daemon.proc;
  assert.equal(result.exitCode, 0, daemon.output().slice(-2000));
});

test('a bad metrics address stops the daemon at start with one line naming the variable (exit 2)', async () => {
  const r = await execa(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPO_ROOT,
    env: env({ KLR_OBSERVER_FILE: join(dir, 'none.log'), KLR_OBSERVER_METRICS_ADDR: 'localhost:9466' }),
    reject: false,
  });
  assert.equal(r.exitCode, 2);
  assert.equal(
    String(r.stderr).trim(),
    'invalid setting KLR_OBSERVER_METRICS_ADDR="localhost:9466": expected IP:PORT to listen on (e.g. 127.0.0.1:9466, 0.0.0.0:9466, [::1]:9466; port 1-65535), or off (also 0)',
  );
});

test('a metrics port already taken stops the daemon with one line saying so (exit 1)', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as { port: number }).port;
  try {
    const r = await execa(process.execPath, ['--import', 'tsx', MAIN], {
      cwd: REPO_ROOT,
      env: env({ KLR_OBSERVER_FILE: join(dir, 'none.log'), KLR_OBSERVER_METRICS_ADDR: `127.0.0.1:${port}` }),
      reject: false,
    });
    assert.equal(r.exitCode, 1);
    assert.equal(
      String(r.stderr).trim(),
      `KLR_OBSERVER_METRICS_ADDR: cannot listen on 127.0.0.1:${port} (EADDRINUSE); another process uses that port: choose another or set off`,
    );
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});
