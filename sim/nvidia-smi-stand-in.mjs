// A stand-in for nvidia-smi that reports a simulated GPU in nvidia-smi's own formats, for tests and demos on
// machines without a GPU. Plain JavaScript so that it starts fast (sim/bin/nvidia-smi runs it with node).
//
// State: the JSON file named by KLR_SIM_GPU_STATE, read on every run so that a test can change it between runs:
//   { "gpus": [{ "index": 0, "uuid": "GPU-…", "name": "NVIDIA H100 80GB HBM3", "totalMb": 81559,
//                "usedMb": 1234, "utilizationPct": 0 }],
//     "processes": [{ "pid": 123, "name": "python3", "usedMb": 70000, "gpuUuid": "GPU-…" }] }
// memory.free is totalMb − usedMb unless a GPU sets "freeMb". A null value prints as [N/A], as nvidia-smi
// does for what the driver does not report (utilization under MIG, process memory under Windows WDDM).
// No variable, no file, or no GPU in it: "No devices were found", exit 6, like a machine without GPUs.
//
// KLR_SIM_NVIDIA_SMI_FAIL makes every run fail the way the real one does:
//   driver_mismatch     "Failed to initialize NVML: Driver/library version mismatch" (stdout), exit 18
//   driver_unreachable  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. …", exit 9
//   no_devices          "No devices were found", exit 6
//   hang                never answers (a driver stuck in the kernel); ends only when killed
//
// Supported: `--query-gpu=<fields>` and `--query-compute-apps=<fields>` with `--format=csv[,noheader][,nounits]`,
// `-L`, and no arguments (the summary table, approximately). Anything else: nvidia-smi's usage error, exit 2.
import { readFileSync } from 'node:fs';

const NVML_LIBRARY_VERSION = '550.127.05';

const out = (text) => process.stdout.write(text);

function exit(code) {
  // Let stdout drain into a pipe before exiting.
  process.exitCode = code;
}

function fail(mode) {
  switch (mode) {
    case 'driver_mismatch':
      out('Failed to initialize NVML: Driver/library version mismatch\n');
      out(`NVML library version: ${NVML_LIBRARY_VERSION.split('.').slice(0, 2).join('.')}\n`);
      return exit(18);
    case 'driver_unreachable':
      out(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. " +
          'Make sure that the latest NVIDIA driver is installed and running.\n\n',
      );
      return exit(9);
    case 'no_devices':
      return noDevices();
    case 'hang':
      // Keeps the event loop alive until a signal ends the process.
      setInterval(() => undefined, 1 << 30);
      return undefined;
    default:
      process.stderr.write(
        `nvidia-smi stand-in: unknown KLR_SIM_NVIDIA_SMI_FAIL=${JSON.stringify(mode)} ` +
          '(expected driver_mismatch, driver_unreachable, no_devices or hang)\n',
      );
      return exit(255);
  }
}

function noDevices() {
  out('No devices were found\n');
  return exit(6);
}

function usageError() {
  out("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n");
  return exit(2);
}

/** The simulated state, or null for "no GPU on this machine". Malformed state is the test's bug: exit 255. */
function readState() {
  const path = process.env.KLR_SIM_GPU_STATE;
  if (!path) return null;
  let raw;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    if (err && err.code === 'ENOENT') return null;
    throw err;
  }
  const state = JSON.parse(raw);
  const gpus = Array.isArray(state.gpus) ? state.gpus : [];
  const processes = Array.isArray(state.processes) ? state.processes : [];
  gpus.forEach((g, i) => {
    for (const key of ['index', 'uuid', 'name']) {
      if (g[key] === undefined) throw new Error(`gpus[${i}].${key} is missing`);
    }
  });
  processes.forEach((p, i) => {
    if (!Number.isInteger(p.pid)) throw new Error(`processes[${i}].pid is not a whole number`);
  });
  return { ...state, gpus, processes };
}

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function freeMb(g) {
  if (g.freeMb !== undefined) return g.freeMb;
  return isNum(g.totalMb) && isNum(g.usedMb) ? g.totalMb - g.usedMb : null;
}

// field → [header, unit, value]
const GPU_FIELDS = {
  index: ['index', null, (g) => g.index],
  uuid: ['uuid', null, (g) => g.uuid],
  name: ['name', null, (g) => g.name],
  count: ['count', null, (_g, all) => all.length],
  'memory.total': ['memory.total [MiB]', 'MiB', (g) => g.totalMb],
  'memory.used': ['memory.used [MiB]', 'MiB', (g) => g.usedMb],
  'memory.free': ['memory.free [MiB]', 'MiB', freeMb],
  'utilization.gpu': ['utilization.gpu [%]', '%', (g) => g.utilizationPct],
};
const APP_FIELDS = {
  pid: ['pid', null, (p) => p.pid],
  process_name: ['process_name', null, (p) => p.name],
  name: ['process_name', null, (p) => p.name],
  used_memory: ['used_gpu_memory [MiB]', 'MiB', (p) => p.usedMb],
  used_gpu_memory: ['used_gpu_memory [MiB]', 'MiB', (p) => p.usedMb],
  gpu_uuid: ['gpu_uuid', null, (p) => p.gpuUuid],
};

function cell(value, unit, units) {
  if (value === null || value === undefined || value === '') return '[N/A]';
  return unit && units ? `${value} ${unit}` : String(value);
}

function query(kind, fieldList, format, state) {
  const table = kind === 'gpu' ? GPU_FIELDS : APP_FIELDS;
  const fields = fieldList.split(',').map((f) => f.trim());
  for (const f of fields) {
    if (!(f in table)) {
      out(`Field "${f}" is not a valid field to query.\n\n`);
      return exit(2);
    }
  }
  const opts = format.split(',');
  if (opts[0] !== 'csv' || opts.slice(1).some((o) => o !== 'noheader' && o !== 'nounits')) {
    out(`"${format}" is not a valid format.\n\n`);
    return exit(2);
  }
  const header = !opts.includes('noheader');
  const units = !opts.includes('nounits');
  const rows = kind === 'gpu' ? state.gpus : state.processes;
  let text = header ? `${fields.map((f) => table[f][0]).join(', ')}\n` : '';
  for (const row of rows) {
    text += `${fields.map((f) => cell(table[f][2](row, rows), table[f][1], units)).join(', ')}\n`;
  }
  out(text);
  return exit(0);
}

function list(state) {
  out(state.gpus.map((g) => `GPU ${g.index}: ${g.name} (UUID: ${g.uuid})\n`).join(''));
  return exit(0);
}

function ctime(d) {
  const day = d.toLocaleString('en-US', { weekday: 'short' });
  const mon = d.toLocaleString('en-US', { month: 'short' });
  const p2 = (n) => String(n).padStart(2, '0');
  return `${day} ${mon} ${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

const fit = (s, n) => (s.length > n ? `${s.slice(0, n - 3)}...` : s);
const spread = (left, right, width) => left.padEnd(width - right.length) + right;

/** The summary table of R535+ drivers, close enough for a human to read. */
function summary(state) {
  const driver = state.driverVersion ?? NVML_LIBRARY_VERSION;
  const cuda = state.cudaVersion ?? '12.4';
  const bar = `+${'-'.repeat(87)}+`;
  const split = `+${'-'.repeat(41)}+${'-'.repeat(22)}+${'-'.repeat(22)}+`;
  const row = (a, b, c) => `|${a}|${b}|${c}|`;
  const lines = [
    `${ctime(new Date())}       `,
    bar,
    `|${spread(` NVIDIA-SMI ${driver}`, `Driver Version: ${driver}   CUDA Version: ${cuda}     `, 87)}|`,
    `|${'-'.repeat(41)}+${'-'.repeat(22)}+${'-'.repeat(22)}|`,
    row(' GPU  Name                 Persistence-M ', ' Bus-Id        Disp.A ', ' Volatile Uncorr. ECC '),
    row(' Fan  Temp   Perf          Pwr:Usage/Cap ', '         Memory-Usage ', ' GPU-Util  Compute M. '),
    row(' '.repeat(41), ' '.repeat(22), '               MIG M. '),
    `|${'='.repeat(41)}+${'='.repeat(22)}+${'='.repeat(22)}|`,
  ];
  for (const g of state.gpus) {
    const bus = `00000000:${(0x18 + 0x10 * Number(g.index)).toString(16).toUpperCase().padStart(2, '0')}:00.0`;
    const mem = (v) => (isNum(v) ? `${v}MiB` : 'N/A');
    const util = isNum(g.utilizationPct) ? `${g.utilizationPct}%` : 'N/A';
    lines.push(
      row(
        spread(`${String(g.index).padStart(4)}  ${fit(String(g.name), 27)}`, 'On  ', 41),
        ` ${bus} Off `,
        `${'0'.padStart(21)} `,
      ),
      row(
        spread(' N/A   33C    P0', '70W / 700W ', 41),
        `${`${mem(g.usedMb)} / ${mem(g.totalMb)}`.padStart(21)} `,
        `${util.padStart(8)}      Default `,
      ),
      row(' '.repeat(41), ' '.repeat(22), `${'Disabled'.padStart(21)} `),
      split,
    );
  }
  lines.push(
    ' '.repeat(89),
    bar,
    `|${' Processes:'.padEnd(87)}|`,
    `|${'  GPU   GI   CI        PID   Type   Process name                            GPU Memory '}|`,
    `|${'        ID   ID                                                             Usage      '}|`,
    `|${'='.repeat(87)}|`,
  );
  const indexOf = new Map(state.gpus.map((g) => [g.uuid, g.index]));
  if (state.processes.length === 0) lines.push(`|${'  No running processes found'.padEnd(87)}|`);
  for (const p of state.processes) {
    const gpu = String(indexOf.get(p.gpuUuid) ?? 'N/A').padStart(5);
    const mem = isNum(p.usedMb) ? `${p.usedMb}MiB ` : 'N/A ';
    lines.push(
      `|${spread(`${gpu}   N/A  N/A  ${String(p.pid).padStart(8)}      C   ${fit(String(p.name), 38)}`, mem, 87)}|`,
    );
  }
  lines.push(bar);
  out(`${lines.join('\n')}\n`);
  return exit(0);
}

function main(argv) {
  const failMode = process.env.KLR_SIM_NVIDIA_SMI_FAIL;
  if (failMode) return fail(failMode);

  if (argv.length === 1 && (argv[0] === '-h' || argv[0] === '--help')) {
    out('NVIDIA System Management Interface -- stand-in (kloros-healing sim/bin/nvidia-smi)\n\n');
    out('    -L, --list-gpus\n    --query-gpu=<fields> --format=csv[,noheader][,nounits]\n');
    out('    --query-compute-apps=<fields> --format=csv[,noheader][,nounits]\n');
    return exit(0);
  }

  let state;
  try {
    state = readState();
  } catch (err) {
    process.stderr.write(
      `nvidia-smi stand-in: bad simulated GPU state in KLR_SIM_GPU_STATE=${process.env.KLR_SIM_GPU_STATE}: ${err.message}\n`,
    );
    return exit(255);
  }
  if (state === null || state.gpus.length === 0) return noDevices();

  if (argv.length === 0) return summary(state);
  if (argv.length === 1 && (argv[0] === '-L' || argv[0] === '--list-gpus')) return list(state);

  const opt = (name) => argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
  const gpuFields = opt('--query-gpu');
  const appFields = opt('--query-compute-apps');
  const format = opt('--format');
  if (argv.length !== 2 || format === undefined || (gpuFields === undefined) === (appFields === undefined)) {
    return usageError();
  }
  return gpuFields !== undefined
    ? query('gpu', gpuFields, format, state)
    : query('apps', appFields, format, state);
}

main(process.argv.slice(2));
