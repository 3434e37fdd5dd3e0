// The predictCandidates activity: read the service's live vLLM config and the model's profile, take the GPU's
// memory from the measurement (or, without one, from the symptom), and rank the configs that would fit.
// Nothing is restarted or written: this is predictive mode.
import { ApplicationFailure } from '@temporalio/common';
import {
  describeFloors,
  diagnose,
  planCandidates,
  type BelowFloor,
  type CandidateFloorSettings,
  type CandidateInput,
} from '../domain/candidates.js';
import {
  SERVING_KEYS,
  planMemory,
  weightsPerGpuMb,
  type ServingConfig,
} from '../domain/vllm-memory-model.js';
import { gibText, signedPercent } from '../domain/memory-text.js';
import type { StartupReport } from '../domain/startup-report.js';
import type { VllmRelease } from '../domain/vllm-release.js';
import { measuredKvMb, readServiceStartupReport, reportMismatch } from '../service/startup-log.js';
import { serviceRelease } from '../service/vllm-version.js';
import { ModelProfileError, loadModelProfile, type LoadedModelProfile } from '../service/model-profile.js';
import { isVllmProcess } from '../service/service-process.js';
import { type GpuRef, serviceVram, serviceVramFindingText } from '../domain/service-vram.js';
import { ServingConfigError, parseServingConfig, readServingConfig } from '../service/vllm-config.js';
import type {
  Calibration,
  GpuMemory,
  GpuProcess,
  PredictInput,
  Recommendation,
  VramSnapshot,
} from './types.js';

/** ApplicationFailure type when no prediction can be made from what is known (not retried). */
export const PREDICTION_IMPOSSIBLE = 'PredictionImpossible';

export interface PredictCandidatesOptions {
  /** The service's vLLM config file (`vllm serve --config FILE`). */
  configPath: string;
  /** KLR_MODEL_PROFILE: a profile file that wins over the model's config.json. */
  modelProfilePath?: string;
  /** Expected restart + health time, ms (the candidates' predicted downtime). */
  restartEstimateMs: () => Promise<number> | number;
  /** More places to look for the model (local model directories, Hugging Face homes). */
  modelSearchDirs?: string[];
  /** Which of the GPU's processes are the service (default: a name containing "vllm", else the best size match). */
  isServiceProcess?: (p: GpuProcess) => boolean;
  /**
   * The service's GPUs as CUDA_VISIBLE_DEVICES names them (a host with several services); null or absent:
   * every GPU of the host, the symptom's index being the host's.
   */
  gpus?: readonly GpuRef[] | null;
  /** KLR_CANDIDATE_MIN_*: floors no candidate goes below; unset knobs take a default derived from the config. */
  floors?: CandidateFloorSettings;
  /** The service's log (KLR_SERVICE_LOG): vLLM's start-up report there calibrates the predictions. */
  logPath?: string | null;
  /** The service's URL (KLR_SERVICE_URL): its GET /version names the release when the log does not. */
  serviceUrl?: string | null;
  /** Environment for HF_HOME and friends (default: the process's). */
  env?: Record<string, string | undefined>;
  now?: () => Date;
}

const impossible = (message: string): ApplicationFailure =>
  ApplicationFailure.create({ message, type: PREDICTION_IMPOSSIBLE, nonRetryable: true });

/** nvidia-smi's name, else the command line of the process or its parents (docs/prediction.md). */
const defaultIsService = (p: GpuProcess): boolean => isVllmProcess(p);

interface GpuView {
  index: number;
  name: string | null;
  totalMb: number;
  freeMb: number | null;
  usedByOthersMb: number;
  /** How the others' share was found, for the basis. */
  how: string;
}

/** Memory this GPU can hand out: used + free when both are known (the driver's reserve excluded), else total. */
function usableTotal(g: GpuMemory): number | null {
  if (g.usedMb !== null && g.freeMb !== null) return g.usedMb + g.freeMb;
  return g.totalMb;
}

/**
 * The GPU a prediction for one service of several sizes: the symptom's (its index is the process's own
 * count, CUDA_VISIBLE_DEVICES order), else the one of its tensor-parallel ranks with the least free memory
 * (each rank must fit on its own GPU). A neighbour holding memory on the service's GPUs is named.
 */
function ownGpu(
  vram: VramSnapshot,
  gpus: readonly GpuRef[],
  isOwn: (p: GpuProcess) => boolean,
  logicalIndex: number | null,
): { snapshot: VramSnapshot; index: number; findings: string } {
  const view = serviceVram(vram, { gpus, isOwn });
  const ranks = view.rankDevices.length > 0 ? view.rankDevices : view.devices;
  if (ranks.length === 0) {
    const problems = view.findings.map(serviceVramFindingText).join('; ');
    throw impossible(
      `none of the service's GPUs (${gpus.join(', ')}) is in the VRAM measurement${problems ? `: ${problems}` : ''}`,
    );
  }
  const byLogical = logicalIndex === null ? undefined : view.devices[logicalIndex];
  const tightest = [...ranks].sort(
    (a, b) => (a.gpu.freeMb ?? Infinity) - (b.gpu.freeMb ?? Infinity) || a.gpu.index - b.gpu.index,
  )[0]!;
  const chosen = byLogical ?? tightest;
  const named = view.findings.filter((f) => f.code === 'neighbour_on_gpu');
  return {
    snapshot: view.snapshot,
    index: chosen.gpu.index,
    findings: named.length > 0 ? `${named.map(serviceVramFindingText).join('; ')}; ` : '',
  };
}

function fromSnapshot(
  vram: VramSnapshot,
  index: number,
  isService: (p: GpuProcess) => boolean,
  servicePlanMb: (totalMb: number, gpuName: string | null) => number,
): GpuView {
  const g = vram.gpus.find((x) => x.index === index);
  if (!g) {
    const have = vram.gpus.map((x) => x.index).join(', ') || 'none';
    throw impossible(`GPU ${index} is not in the VRAM measurement of ${vram.measuredAt} (GPUs: ${have})`);
  }
  const totalMb = usableTotal(g);
  if (totalMb === null || !(totalMb > 0)) {
    throw impossible(`GPU ${index}: nvidia-smi reported no memory total, so no config can be sized`);
  }
  const used = g.usedMb ?? (g.freeMb !== null ? totalMb - g.freeMb : null);
  if (used === null) throw impossible(`GPU ${index}: nvidia-smi reported neither used nor free memory`);
  const requested = servicePlanMb(totalMb, g.name);
  const onGpu = vram.processes.filter((p) => g.uuid !== null && p.gpuUuid === g.uuid);
  const sum = (ps: GpuProcess[]) => ps.reduce((s, p) => s + (p.usedMb ?? 0), 0);
  const pids = (ps: GpuProcess[]) => ps.map((p) => p.pid).join(', ');

  let service = onGpu.filter(isService);
  let how: string;
  if (service.length > 0) {
    how = `the service (pid ${pids(service)}) holds ${Math.round(sum(service))} MiB`;
  } else {
    // No process says it is vLLM (nvidia-smi often shows "python3"): the one closest to the current budget.
    const closest = onGpu
      .filter((p) => p.usedMb !== null && Math.abs(p.usedMb - requested) <= 0.25 * requested)
      .sort(
        (a, b) =>
          Math.abs((a.usedMb ?? 0) - requested) - Math.abs((b.usedMb ?? 0) - requested) || a.pid - b.pid,
      );
    service = closest.slice(0, 1);
    if (service.length > 0)
      how = `pid ${pids(service)} holds ${Math.round(sum(service))} MiB, the size of the service's budget`;
    else how = '';
  }
  if (service.length > 0) {
    return {
      index,
      name: g.name,
      totalMb,
      freeMb: g.freeMb,
      usedByOthersMb: Math.max(0, used - sum(service)),
      how,
    };
  }
  if (onGpu.length === 0 && used >= 0.75 * requested) {
    // Processes invisible (a container): assume the service holds its predicted budget.
    return {
      index,
      name: g.name,
      totalMb,
      freeMb: g.freeMb,
      usedByOthersMb: Math.max(0, used - requested),
      how: `no process list; the service is assumed to hold its ${Math.round(requested)} MiB budget`,
    };
  }
  return {
    index,
    name: g.name,
    totalMb,
    freeMb: g.freeMb,
    usedByOthersMb: used,
    how: 'the service holds none',
  };
}

function describeConfig(c: ServingConfig): string {
  return (Object.keys(SERVING_KEYS) as (keyof ServingConfig)[])
    .map((f) => `${SERVING_KEYS[f]} ${f === 'gpuMemoryUtilization' ? c[f].toFixed(2) : String(c[f])}`)
    .join(', ');
}

/** "left out below the floors: max-model-len=16 (it would fit): max-model-len 16 below the floor 4096 (…); …". */
function leftOutText(belowFloor: readonly BelowFloor[]): string {
  const shown = belowFloor
    .slice(0, MAX_LEFT_OUT_SHOWN)
    .map((b) => `${b.id}${b.wouldFit ? ' (it would fit)' : ''}: ${b.reason}`);
  const more = belowFloor.length - shown.length;
  return `left out below the floors: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
}

/** How many left-out candidates the basis names; the rest are counted. */
const MAX_LEFT_OUT_SHOWN = 4;

export function createPredictCandidates(
  opts: PredictCandidatesOptions,
): (input: PredictInput) => Promise<Recommendation> {
  const isService = opts.isServiceProcess ?? defaultIsService;
  const now = opts.now ?? (() => new Date());

  return async function predictCandidates(input: PredictInput): Promise<Recommendation> {
    const symptom = input.symptom;
    // vLLM's own report of its latest start, and the release it runs: the plan follows that release.
    const startup = opts.logPath ? await readServiceStartupReport(opts.logPath) : null;
    const { release, how: releaseText } = await serviceRelease(startup, opts.serviceUrl ?? null);
    let model: LoadedModelProfile;
    let text: string;
    try {
      const file = readServingConfig(opts.configPath);
      text = file.text;
      model = loadModelProfile({
        servingConfigModel: file.model,
        profilePath: opts.modelProfilePath,
        searchDirs: opts.modelSearchDirs,
        servedModelName: file.servedModelName,
        servingDtype: file.dtype,
        env: opts.env,
      });
    } catch (e) {
      if (e instanceof ServingConfigError || e instanceof ModelProfileError) throw impossible(e.message);
      throw e;
    }
    const servingFor = (gpuTotalMb: number | null, gpuName: string | null): ServingConfig => {
      try {
        return parseServingConfig(text, opts.configPath, {
          gpuTotalMb,
          gpuName,
          release,
          maxPositionEmbeddings: model.maxPositionEmbeddings,
        }).serving;
      } catch (e) {
        if (e instanceof ServingConfigError) throw impossible(e.message);
        throw e;
      }
    };
    const plannedMb = (totalMb: number, gpuName: string | null): number => {
      try {
        const plan = planMemory(model, servingFor(totalMb, gpuName), totalMb, { release });
        return plan.requestedMb + plan.outsideBudgetMb;
      } catch (e) {
        if (e instanceof RangeError) throw impossible(`model profile ${model.source}: ${e.message}`);
        throw e;
      }
    };

    let index = symptom?.gpu ?? 0;
    let neighbours = '';
    let gpu: GpuView;
    if (input.vram !== null && opts.gpus) {
      // One service of several: its GPUs only, the symptom's GPU index as its process counts them.
      const own = ownGpu(input.vram, opts.gpus, isService, symptom?.gpu ?? null);
      index = own.index;
      neighbours = own.findings;
      gpu = fromSnapshot(own.snapshot, index, isService, plannedMb);
    } else if (input.vram !== null) {
      gpu = fromSnapshot(input.vram, index, isService, plannedMb);
    } else if (symptom?.totalMb !== undefined && symptom.freeMb !== undefined && symptom.totalMb > 0) {
      // No measurement: what the failure message said. At run time the service held its budget then.
      const family = symptom.family ?? '';
      const running = ['torch_oom', 'cublas_alloc', 'nccl_alloc', 'engine_dead'].includes(family);
      const serviceMb = running ? plannedMb(symptom.totalMb, null) : 0;
      gpu = {
        index,
        name: null,
        totalMb: symptom.totalMb,
        freeMb: symptom.freeMb,
        usedByOthersMb: Math.max(0, symptom.totalMb - symptom.freeMb - serviceMb),
        how: running
          ? `from the symptom, the service holding its ${Math.round(serviceMb)} MiB budget`
          : 'from the symptom, the service holding nothing yet',
      };
    } else {
      throw impossible(
        'no VRAM measurement and the symptom gives no totalMb/freeMb: the GPU memory is unknown, so no config can be sized',
      );
    }

    const current = servingFor(gpu.totalMb, gpu.name);
    const restartEstimateMs = await opts.restartEstimateMs();
    if (!Number.isFinite(restartEstimateMs) || restartEstimateMs < 0) {
      throw new RangeError(`restartEstimateMs must be a number of ms ≥ 0, got ${restartEstimateMs}`);
    }
    // What vLLM printed at the start of the running config: the baseline the candidates are predicted from.
    const calibration = calibrate(opts.logPath ?? null, startup, model, current, gpu, release);
    const candidateInput: CandidateInput = {
      model,
      current,
      gpu: { totalMb: gpu.totalMb, freeMb: gpu.freeMb, usedByOthersMb: gpu.usedByOthersMb },
      symptom,
      release,
      restartEstimateMs: Math.round(restartEstimateMs),
      ...(opts.floors ? { floors: opts.floors } : {}),
      ...(calibration.value?.measuredKvMb != null
        ? { measured: { kvCacheMb: calibration.value.measuredKvMb } }
        : {}),
    };
    let plan;
    let family;
    try {
      plan = planCandidates(candidateInput);
      const d = diagnose(candidateInput);
      family = `${d.family}${d.inferred ? ' (inferred: no family in the symptom)' : ''}`;
    } catch (e) {
      if (e instanceof RangeError) throw impossible(`model profile ${model.source}: ${e.message}`);
      throw e;
    }
    const { candidates, belowFloor } = plan;
    const fitting = candidates.filter((c) => c.fits).length;
    const free = gpu.freeMb === null ? 'free unknown' : `${Math.round(gpu.freeMb)} MiB free`;
    const basis =
      `${family} on GPU ${gpu.index}${gpu.name ? ` (${gpu.name})` : ''}: ${Math.round(gpu.totalMb)} MiB usable, ` +
      `${Math.round(gpu.usedByOthersMb)} MiB held by other processes (${gpu.how}), ${free}; ` +
      neighbours +
      `model ${model.name} from ${model.source}; current ${describeConfig(current)}; ` +
      `floors ${describeFloors(plan.floors)}; ` +
      `${releaseText}, ${accountingText(model, current, gpu, release)}; ` +
      `${calibration.text}; ` +
      `${candidates.length} candidates, ${fitting} predicted to fit` +
      (belowFloor.length > 0
        ? `${fitting === 0 ? ': no fitting candidate within the floors' : ''}; ${leftOutText(belowFloor)}`
        : '') +
      '.';
    return {
      at: now().toISOString(),
      basis,
      candidates,
      ...(calibration.value ? { calibration: calibration.value } : {}),
    };
  };
}

/** Which accounting the plan follows, in a few words for the basis. */
function accountingText(
  model: LoadedModelProfile,
  current: ServingConfig,
  gpu: GpuView,
  release: VllmRelease | null,
): string {
  if (release === null) return 'the conservative plan (graphs and CUDA context inside the budget)';
  try {
    return `its ${planMemory(model, current, gpu.totalMb, { release, othersMb: gpu.usedByOthersMb }).accounting.replaceAll('_', ' ')} accounting`;
  } catch {
    return 'its accounting';
  }
}

/** Measured against predicted for the running config, and a few words on it for the basis. */
function calibrate(
  logPath: string | null,
  report: StartupReport | null,
  model: LoadedModelProfile,
  current: ServingConfig,
  gpu: GpuView,
  release: VllmRelease | null,
): { value: Calibration | null; text: string } {
  const gpuTotalMb = gpu.totalMb;
  if (logPath === null) return { value: null, text: 'not calibrated (no KLR_SERVICE_LOG)' };
  if (report === null) return { value: null, text: `not calibrated (no vLLM start-up report in ${logPath})` };
  const mismatch = reportMismatch(report, current);
  if (mismatch !== null) return { value: null, text: `not calibrated: ${mismatch}` };
  let predicted;
  try {
    predicted = planMemory(model, current, gpuTotalMb, { release, othersMb: gpu.usedByOthersMb });
  } catch {
    return { value: null, text: 'not calibrated (the model cannot plan the running config)' };
  }
  const kv = measuredKvMb(report, model, current);
  if (kv !== null && !(Math.abs(kv) <= gpuTotalMb)) {
    return {
      value: null,
      text: `not calibrated: the log's KV cache of ${gibText(kv)} cannot be on a ${gibText(gpuTotalMb)} GPU`,
    };
  }
  const value: Calibration = {
    vllmVersion: report.version ?? null,
    measuredKvMb: kv === null ? null : Math.round(kv),
    measuredKvTokens: report.kvTokens ?? null,
    measuredWeightsMb: report.weightsGiB === undefined ? null : Math.round(report.weightsGiB * 1024),
    predictedKvMb: Math.round(predicted.kvCacheMb),
    predictedWeightsMb: Math.round(weightsPerGpuMb(model, current)),
    kvErrorRatio: kv === null || kv === 0 ? null : (predicted.kvCacheMb - kv) / Math.abs(kv),
  };
  const text =
    kv === null
      ? `vLLM${report.version ? ` ${report.version}` : ''} printed no KV cache figure: not calibrated`
      : `calibrated to vLLM${report.version ? ` ${report.version}` : ''}'s own start-up report: KV cache ${gibText(kv)} measured, ${gibText(predicted.kvCacheMb)} modelled (${signedPercent(value.kvErrorRatio!)})`;
  return { value, text };
}
