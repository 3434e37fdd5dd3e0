// What an operator should do about a GPU hardware fault the loop will never retune. The actions follow
// the "resolution buckets" of NVIDIA's Xid catalog (https://docs.nvidia.com/deploy/xid-errors/
// analyzing-xid-catalog.html): restart the application, reset the GPU, reboot the machine, or contact
// NVIDIA support / plan an RMA when the fault repeats. Pure: the text goes into decisions and the CLI.

/** The Xid number of a kernel log line such as "NVRM: Xid (PCI:0000:3b:00): 79, pid=…", or null. */
export function xidFromText(text: string | undefined): number | null {
  // "Xid (PCI:0000:3b:00): 79," (kernel), "Xid (0000:03:00): 14," (older drivers), "Xid 79" (people)
  const m = /\bXid\b\s*(?:\([^)]*\))?:?\s*(\d{1,4})\b/.exec(text ?? '');
  return m ? Number(m[1]) : null;
}

const XID_ADVICE: Readonly<Record<number, string>> = {
  13: 'graphics engine exception, usually the application (bad kernel, out-of-range access): restart the service; if it repeats with a known-good build, check the GPU',
  31: 'GPU memory page fault, usually an illegal address in the application or a CUDA library: restart the service and check the build',
  43: 'the GPU stopped processing for the application: restart the service',
  45: 'preemptive cleanup after an earlier error: look for the Xid before it',
  48: 'double-bit ECC error: drain the host, reset the GPU (nvidia-smi -r) or reboot; if it repeats, contact support / RMA',
  63: 'ECC page retirement or row remapping recorded: reset the GPU at a quiet moment so the remap takes effect',
  64: 'ECC page retirement or row remapping failed: drain the host, reset the GPU, and contact support if it repeats',
  74: 'NVLink error: drain the host, reset the GPUs on the link (or reboot), check the NVLink/NVSwitch health',
  79: 'the GPU fell off the bus: drain the host and power-cycle it; check PCIe seating, power and temperatures; repeated → RMA',
  92: 'high single-bit ECC error rate: watch it; plan a GPU reset, and contact support if it keeps rising',
  94: 'contained ECC error: restart the affected service; the GPU stays usable',
  95: 'uncontained ECC error: drain the host and reset the GPU; if it repeats, contact support',
  119: 'GSP firmware RPC timeout: reset the GPU or reboot; update the driver if it repeats',
  120: 'GSP firmware error: reset the GPU or reboot; update the driver if it repeats',
};

/** Driver messages that come without an Xid number. */
const NO_XID_ADVICE: readonly [RegExp, string, string][] = [
  [/fallen off the bus/i, 'the GPU fell off the bus', XID_ADVICE[79] as string],
  [
    /RmInitAdapter failed|rm_init_adapter failed/i,
    'the GPU failed to initialise',
    'drain the host and reboot it; if it fails again, reseat or replace the GPU (check nvidia-smi -q and the BMC)',
  ],
];

/** One sentence for an operator about a hardware fault (the Xid number when the symptom shows one). */
export function hardwareAdvice(kind: string, text: string | undefined): string {
  const xid = kind === 'gpu_xid' ? xidFromText(text) : null;
  if (kind === 'gpu_xid' && xid === null) {
    const known = NO_XID_ADVICE.find(([re]) => re.test(text ?? ''));
    if (known) return `${known[1]}: ${known[2]}. A hardware fault is never retuned by a config canary.`;
  }
  const specific = xid !== null ? XID_ADVICE[xid] : undefined;
  const what = xid !== null ? `Xid ${xid}` : kind;
  return specific
    ? `${what}: ${specific}. A hardware fault is never retuned by a config canary.`
    : `${what}: a hardware fault is never retuned by a config canary; check dmesg / journalctl -k and nvidia-smi -q for the GPU, and NVIDIA's Xid catalog for the code's resolution.`;
}
