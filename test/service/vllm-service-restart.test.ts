// The vLLM adapter's two log marks around a restart, with a real restart command that writes the log
// itself before it returns, as a quick start or a command that waits for the service does (the
// simulator, started without tsx, printed its banner before `supervisor restart` returned, and the
// canary recorded no vLLM version). Failures count from after the command (an OOM the old process
// printed while it was stopped is the old config's); the new start's report is read from before it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CandidateConfig } from '../../src/domain/recommendation.js';
import { vllmService } from '../../src/service/vllm-service.js';

const dir = mkdtempSync(join(tmpdir(), 'klr-vllm-restart-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// vLLM 0.10 V1 lines (the formats of test/fixtures/vllm-startup-reports and real-logs/vllm).
const OLD_PROCESS_OOM =
  '(EngineCore_0 pid=4100) ERROR 12-03 03:00:01 [core.py:700] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 318.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 315.44 MiB is free.';
const NEW_START = [
  '(APIServer pid=4200) INFO 12-03 03:00:02 [api_server.py:1805] vLLM API server version 0.10.1.1',
  '(EngineCore_0 pid=4300) INFO 12-03 03:00:30 [gpu_worker.py:276] Available KV cache memory: 3.55 GiB',
  '(EngineCore_0 pid=4300) INFO 12-03 03:00:30 [kv_cache_utils.py:849] GPU KV cache size: 29,088 tokens',
];

const candidate: CandidateConfig = {
  id: 'gpu_memory_utilization=0.9',
  changes: { 'gpu-memory-utilization': 0.9 },
  predictedVramMb: 72_000,
  headroomMb: 8_000,
  fits: true,
  predictedDowntimeMs: 60_000,
  givesUp: 'nothing',
  why: 'test',
};

test('a start printed before the restart command returns is still the canary measurement; an OOM printed then is not its failure', async () => {
  const logPath = join(dir, 'service.log');
  writeFileSync(logPath, 'INFO 12-03 02:00:00 [api_server.py:1805] vLLM API server version 0.9.2\n');
  const linesFile = join(dir, 'restart-prints.txt');
  writeFileSync(linesFile, [OLD_PROCESS_OOM, ...NEW_START].join('\n') + '\n');
  const service = vllmService(
    {
      configPath: join(dir, 'vllm.yaml'),
      restartCommand: ['/bin/sh', '-c', 'cat "$0" >> "$1"', linesFile, logPath],
      restartTimeoutMs: 10_000,
      baseUrl: 'http://127.0.0.1:9',
      logPath,
      model: null,
      backupDir: join(dir, 'backups'),
    },
    { measureVram: () => Promise.reject(new Error('not measured here')) },
  );

  const { logMark, startMark } = await service.restart(new AbortController().signal);
  assert.ok(startMark !== null && logMark !== null && startMark < logMark, `${startMark} < ${logMark}`);

  assert.deepEqual(await service.startupMeasurement(startMark, candidate), {
    vllmVersion: '0.10.1.1',
    kvCacheMb: Math.round(3.55 * 1024),
    kvTokens: 29_088,
    weightsMb: null,
  });
  assert.equal(await service.logCause(logMark), null, "the old process's OOM is not the candidate's failure");
  // From after the command the new start is out of reach: the mark the measurement used to read from.
  assert.equal(await service.startupMeasurement(logMark, candidate), null);
});
