/**
 * The default CPU thread count. Why it is not "every core": node-llama-cpp attaches no ggml threadpool, so each
 * decode creates its worker threads afresh and they meet at a spin barrier after every graph node (no yield).
 * When one of them waits for a core (the Node event loop, libuv, another process), the others spin for a whole
 * scheduler slice: on a 2-core box rbee-tiny decodes at ~1 ms/token with 1 thread and 5-12 ms/token with 2.
 * So threads only pay off when each one has enough weights to stream per token, and one core stays free.
 */

/** Weights (bytes read per token on the CPU) worth one more thread: ~3 ms of memory bandwidth. */
export const BYTES_PER_THREAD = 64 * 1024 * 1024;

export interface ThreadProbe {
  /** cores useful for math (node-llama-cpp's `cpuMathCores`: physical cores) */
  mathCores: number;
  /** cores this process may run on (`os.availableParallelism()`) */
  availableCores: number;
  /** model file size in bytes */
  modelBytes: number;
  gpuLayers: number;
  totalLayers: number;
}

export interface ThreadChoice {
  threads: number;
  /** one sentence for the load narration */
  why: string;
}

export function chooseThreads(explicit: number | undefined, p: ThreadProbe): ThreadChoice {
  if (explicit !== undefined && explicit > 0) return { threads: explicit, why: `--threads ${explicit}` };
  const cores = Math.max(1, Math.min(p.mathCores, p.availableCores));
  const cpuShare = p.totalLayers > 0 ? Math.max(0, p.totalLayers - p.gpuLayers) / p.totalLayers : 1;
  const cpuBytes = p.modelBytes * cpuShare;
  const byWork = Math.max(1, Math.ceil(cpuBytes / BYTES_PER_THREAD));
  const spare = Math.max(1, cores - 1);
  const threads = Math.min(byWork, spare);
  const mib = Math.round(cpuBytes / (1024 * 1024));
  const why = threads === byWork
    ? `auto: ${mib} MiB of weights on the CPU, one thread per ${BYTES_PER_THREAD / (1024 * 1024)} MiB`
    : `auto: ${cores} cores, one left for the event loop`;
  return { threads, why };
}
