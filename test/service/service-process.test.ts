// Which GPU process is the vLLM service, when nvidia-smi names it only "python3": its command line, or an
// ancestor's (vLLM's engine core started by multiprocessing's spawn has `vllm serve` as its parent). Real
// processes, read through the real /proc.
//   node --import tsx --test test/service/service-process.test.ts
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isProcessOfService, isVllmProcess } from '../../src/service/service-process.js';
import { readCommandLine, readProcStat } from '../../src/service/proc-info.js';
import { family, orphan, stopFamilies } from '../support/process-family.js';

after(stopFamilies);

const gpuProcess = (pid: number, processName: string | null) => ({
  pid,
  processName,
  usedMb: 16_000,
  gpuUuid: 'GPU-0',
});

test('/proc readers: the parent and the command line of a live process; null for one that is gone', async () => {
  const { parent, child } = await family(['--', 'parent-marker'], ['--', 'child-marker']);
  assert.equal(readProcStat(child)?.ppid, parent);
  assert.match(readCommandLine(child) ?? '', /child-marker$/);
  assert.match(readCommandLine(parent) ?? '', /parent-marker$/);
  assert.equal(readProcStat(2 ** 22 + 1), null);
  assert.equal(readCommandLine(2 ** 22 + 1), null);
});

test("vLLM by its name, its own command line, or its parent's", async () => {
  assert.ok(isVllmProcess(gpuProcess(2 ** 22 + 1, 'VLLM::EngineCore')), 'a titled engine core');
  const serve = await family(
    ['--', 'vllm', 'serve', 'meta-llama/Llama-3.1-8B-Instruct'],
    ['--', 'spawn_main'],
  );
  assert.ok(isVllmProcess(gpuProcess(serve.parent, 'python3')), '`vllm serve` itself');
  assert.ok(isVllmProcess(gpuProcess(serve.child, 'python3')), 'its spawned engine core');
  // Orphaned, so that its ancestors are not this test's (whose paths may say "vllm" on some machine).
  const other = await orphan(['--', 'train.py']);
  assert.notEqual(readProcStat(other)?.ppid, process.pid);
  assert.equal(isVllmProcess(gpuProcess(other, 'python3')), false, 'a training job is not vLLM');
  assert.equal(isVllmProcess(gpuProcess(2 ** 22 + 1, 'python3')), false, 'a pid this host cannot see');
});

test('one service of several: its processes by its config path or port, a neighbour vLLM is not', async () => {
  const own = await family(
    ['--', 'vllm', 'serve', '--config', '/etc/vllm/llama.yaml'],
    ['--', 'spawn_main', 'engine-core'],
  );
  const neighbour = await family(
    ['--', 'vllm', 'serve', '--config', '/etc/vllm/qwen.yaml'],
    ['--', 'spawn_main'],
  );
  const inContainer = await family(
    ['--', 'vllm', 'serve', '--config', '/config/c.yaml', '--port', '8001'],
    ['--', 'w'],
  );
  const llama = { configPath: '/etc/vllm/llama.yaml', port: 8001 };
  assert.ok(isProcessOfService(gpuProcess(own.parent, 'python3'), llama), '`vllm serve --config` its file');
  assert.ok(
    isProcessOfService(gpuProcess(own.child, 'VLLM::EngineCore'), llama),
    'its engine core, by its parent',
  );
  assert.equal(isProcessOfService(gpuProcess(neighbour.child, 'python3'), llama), false, "another service's");
  assert.ok(
    isProcessOfService(gpuProcess(inContainer.child, 'python3'), llama),
    'by its port, in a container',
  );
  assert.equal(
    isProcessOfService(gpuProcess(inContainer.child, 'python3'), {
      configPath: '/etc/vllm/llama.yaml',
      port: 80,
    }),
    false,
    '--port 8001 is not port 80',
  );
  assert.equal(
    isProcessOfService(gpuProcess(2 ** 22 + 1, 'python3'), llama),
    false,
    'a pid this host cannot see',
  );
});
