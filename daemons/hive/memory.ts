/**
 * How much memory a worker will need, estimated from the model's GGUF header: the weights (the
 * file), the KV cache for its context, and a fixed process overhead. An estimate, not a promise:
 * the worker's own load (node-llama-cpp) still has the last word and fails INSUFFICIENT_MEMORY.
 */
import { readGgufHeader, type GgufReadValue } from "../../shared/gguf/reader.js";

/** Context per sequence assumed when the spawn names none (capped by the model's trained context). */
export const DEFAULT_CONTEXT_ESTIMATE = 4096;
/** Node, llama.cpp's compute buffers and the like, beside weights and KV cache. */
const PROCESS_OVERHEAD = 96 * 1024 * 1024;

export interface MemoryEstimate {
  weights: number;
  kvCache: number;
  overhead: number;
  total: number;
}

const num = (v: GgufReadValue | undefined): number | undefined => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined);

/** The estimate from header facts; pure so it is tested without files. */
export function estimateFromMetadata(
  metadata: Readonly<Record<string, GgufReadValue>>,
  fileSize: number,
  contextSize: number | undefined,
  parallel: number,
): MemoryEstimate {
  const arch = typeof metadata["general.architecture"] === "string" ? metadata["general.architecture"] : "llama";
  const layers = num(metadata[`${arch}.block_count`]) ?? 32;
  const embd = num(metadata[`${arch}.embedding_length`]) ?? 4096;
  const heads = num(metadata[`${arch}.attention.head_count`]) ?? 1;
  const headsKv = num(metadata[`${arch}.attention.head_count_kv`]) ?? heads;
  const trained = num(metadata[`${arch}.context_length`]) ?? DEFAULT_CONTEXT_ESTIMATE;
  const ctx = contextSize ?? Math.min(trained, DEFAULT_CONTEXT_ESTIMATE);
  // K and V, f16, one row of n_embd * (kv heads / heads) per layer and token (grouped-query attention shrinks it).
  const kvCache = Math.ceil(2 * 2 * layers * embd * (headsKv / heads) * ctx * parallel);
  const overhead = PROCESS_OVERHEAD + Math.ceil(fileSize * 0.05);
  return { weights: fileSize, kvCache, overhead, total: fileSize + kvCache + overhead };
}

export async function estimateWorkerMemory(modelPath: string, contextSize: number | undefined, parallel: number): Promise<MemoryEstimate> {
  // Only scalars are needed: vocabulary arrays are skipped, not kept.
  const header = await readGgufHeader(modelPath, { maxArrayItems: 0 });
  return estimateFromMetadata(header.metadata, header.fileSize, contextSize, parallel);
}

export const mib = (bytes: number): string => `${Math.round(bytes / (1024 * 1024))} MiB`;
