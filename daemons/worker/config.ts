import { basename } from "node:path";
import { UsageError, intFlag, strFlag } from "../../shared/daemon.js";
import { randomId } from "../../shared/ids.js";
import { WORKER_ID_PATTERN, isModelId, type GpuLayers } from "../../shared/protocol.js";

/** Everything the worker is started with, parsed from its flags. */
export interface WorkerConfig {
  modelPath: string;
  modelId: string;
  workerId: string;
  device: string;
  gpuLayers: GpuLayers;
  contextSize: number | undefined;
  parallel: number;
  threads: number | undefined;
  maxQueue: number;
  correlationId: string | undefined;
  parentJobId: string | undefined;
}

export const WORKER_FLAGS = {
  model: { type: "string" },
  "model-id": { type: "string" },
  "worker-id": { type: "string" },
  device: { type: "string" },
  "gpu-layers": { type: "string" },
  "context-size": { type: "string" },
  parallel: { type: "string" },
  threads: { type: "string" },
  "max-queue": { type: "string" },
  "correlation-id": { type: "string" },
  "parent-job-id": { type: "string" },
} as const;

type Values = Parameters<typeof intFlag>[0];

/** A model id from a file name: `Llama-3.2-1B.Q4_K_M.gguf` -> `llama-3.2-1b.q4_k_m`. */
export function modelIdFromPath(path: string): string {
  const id = basename(path).replace(/\.gguf$/i, "").toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+/, "");
  return isModelId(id) ? id : "model";
}

export function parseWorkerFlags(values: Values): WorkerConfig {
  const modelPath = strFlag(values, "model");
  if (!modelPath) throw new UsageError("--model PATH is required (the GGUF file to load).");
  const modelId = strFlag(values, "model-id") ?? modelIdFromPath(modelPath);
  if (!isModelId(modelId)) throw new UsageError(`--model-id "${modelId}" is not a model id (lowercase letters, digits, '.', '_', '-').`);
  const workerId = strFlag(values, "worker-id") ?? `worker-${randomId(8)}`;
  if (!WORKER_ID_PATTERN.test(workerId)) throw new UsageError(`--worker-id "${workerId}" is not a worker id (letters, digits, '.', '_', '-').`);
  const device = strFlag(values, "device") ?? "auto";
  if (device !== "auto" && device !== "cpu" && !/^gpu:\d{1,3}$/.test(device)) {
    throw new UsageError(`--device must be auto, cpu or gpu:N, got "${device}".`);
  }
  const rawLayers = strFlag(values, "gpu-layers") ?? "auto";
  let gpuLayers: GpuLayers;
  if (rawLayers === "auto" || rawLayers === "max") gpuLayers = rawLayers;
  else if (/^\d{1,6}$/.test(rawLayers)) gpuLayers = Number(rawLayers);
  else throw new UsageError(`--gpu-layers must be auto, max or a number of layers, got "${rawLayers}".`);
  const rawThreads = strFlag(values, "threads");
  const threads = rawThreads === undefined || rawThreads === "auto" ? undefined : intFlag(values, "threads", 1, 1, 1024);
  return {
    modelPath,
    modelId,
    workerId,
    device,
    gpuLayers,
    contextSize: values["context-size"] === undefined ? undefined : intFlag(values, "context-size", 0, 64, 16_777_216),
    parallel: intFlag(values, "parallel", 1, 1, 64),
    threads,
    maxQueue: intFlag(values, "max-queue", 64, 0, 1_000_000),
    correlationId: strFlag(values, "correlation-id"),
    parentJobId: strFlag(values, "parent-job-id"),
  };
}

export const WORKER_HELP = `llm-worker-rbee: serves one GGUF model (llama.cpp through node-llama-cpp) as rbee jobs.

Usage: llm-worker-rbee --model PATH [options]

Model and hardware:
  --model PATH              GGUF file to load (required)
  --model-id ID             model id reported in /v1/info (default: the file name without .gguf)
  --worker-id ID            this worker's id (default: worker-<random>)
  --device auto|cpu|gpu:N   auto: CUDA, Vulkan or Metal when present, else CPU; cpu: no GPU probing (default auto)
  --gpu-layers auto|max|N   layers offloaded to the GPU: auto = as many as fit, max = all or fail
                            with INSUFFICIENT_MEMORY (default auto)
  --context-size N          context tokens per sequence, >= 64 (default: the model's, at most 4096)
  --parallel N              jobs served at once, one sequence each, 1-64 (default 1)
  --threads N|auto          CPU threads for decoding (default auto: one per 64 MiB of weights left on
                            the CPU, at most the cores less one; /v1/info says what was chosen)
  --max-queue N             jobs that may wait for a free slot; more end QUEUE_FULL (default 64)

Tracing (set by rbee-hive):
  --correlation-id ID       correlation id of the model-load job
  --parent-job-id ID        the job that spawned this worker (recorded on the load job)

Common:
  --port N                  port to listen on; 0 picks a free one (default 9001)
  --host HOST               address to bind (default 127.0.0.1; others need a token)
  --token-file PATH         bearer token file (else RBEE_TOKEN)
  --log-file PATH           JSON log lines go here instead of stderr
  -h, --help                this text
  -v, --version             the version

The worker prints "listening <url>" once bound, then loads the model as job "load" (GET /v1/info shows
load_job_id and state). Operations: infer, embed. POST /v1/shutdown stops it.
See llm-worker-rbee(8).
`;
