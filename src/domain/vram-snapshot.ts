// What nvidia-smi measured on a GPU host: the GPUs and the processes holding their memory.
/** One GPU as nvidia-smi reports it; a value the driver does not report is null, never 0. */
export interface GpuMemory {
  index: number;
  uuid: string | null;
  name: string | null;
  totalMb: number | null;
  usedMb: number | null;
  freeMb: number | null;
  utilizationPct: number | null;
}

export interface GpuProcess {
  pid: number;
  processName: string | null;
  usedMb: number | null;
  gpuUuid: string | null;
}

export interface VramSnapshot {
  /** ISO time of the measurement (host clock). */
  measuredAt: string;
  gpus: GpuMemory[];
  processes: GpuProcess[];
}
