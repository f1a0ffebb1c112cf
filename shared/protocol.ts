import { RbeeError, type ErrorCode, invalid } from "./errors.js";
import {
  boolean, either, isPlainObject, list, number, object, oneOf, optional, string, withDefault,
  type ObjectOut, type Spec,
} from "./schema.js";

// ---- identifiers -------------------------------------------------------------------------------

export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
export const HIVE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const WORKER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const JOB_ID_PATTERN = /^job-[A-Za-z0-9_-]{6,64}$/;
/** Where model_download may fetch from: an http(s) URL, or a file in a Hugging Face repository. */
export const MODEL_SOURCE_PATTERN = /^(?:https?:\/\/[^\s/]+\/\S*|hf:[^\s/]+\/[^\s/]+\/\S+\.gguf)$/i;
export const DEFAULT_MODEL = "rbee-tiny";
export const DEFAULT_KEEP_ALIVE = 300;

export const isModelId = (v: string): boolean => MODEL_ID_PATTERN.test(v) && !v.includes("..");

export const modelId: Spec<string> = (v, field) => {
  const s = string()(v, field);
  if (!isModelId(s)) throw invalid(field, `"${s.slice(0, 80)}" is not a model id (lowercase letters, digits, '.', '_', '-'; no '..', no '/').`);
  return s;
};
const hiveId = string({ pattern: HIVE_ID_PATTERN, patternText: "must be a hive id (lowercase letters, digits, '.', '_', '-')." });
const workerId = string({ pattern: WORKER_ID_PATTERN, patternText: "must be a worker id." });

// ---- field specs shared by several operations --------------------------------------------------

const hiveIdDefault = withDefault(hiveId, "localhost");
const keepAlive = optional(number({ integer: true, min: -1 }));
const device: Spec<string> = (v, field) => {
  const s = string()(v, field);
  if (s !== "auto" && s !== "cpu" && !/^gpu:\d{1,3}$/.test(s)) throw invalid(field, `must be "auto", "cpu" or "gpu:N", got "${s.slice(0, 40)}".`);
  return s;
};
export type GpuLayers = "auto" | "max" | number;
const gpuLayers: Spec<GpuLayers> = either(oneOf(["auto", "max"] as const), number({ integer: true, min: 0 }), 'must be "auto", "max" or an integer >= 0.');
const message = object({
  role: oneOf(["system", "user", "assistant"] as const),
  content: string(),
});
export type ChatMessage = ObjectOut<{ role: Spec<"system" | "user" | "assistant">; content: Spec<string> }>;

const samplingFields = {
  model: withDefault(modelId, DEFAULT_MODEL),
  max_tokens: withDefault(number({ integer: true, min: 1 }), 128),
  temperature: withDefault(number({ min: 0, max: 2 }), 0.7),
  top_p: optional(number({ minExclusive: 0, max: 1 })),
  top_k: optional(number({ integer: true, min: 0 })),
  seed: optional(number({ integer: true, min: 0, max: 2 ** 32 - 1 })),
  stop: optional(list(string({ nonEmpty: true }), { max: 16 })),
  ignore_eos: withDefault(boolean(), false),
  prompt: optional(string({ nonEmpty: true })),
  messages: optional(list(message, { nonEmpty: true })),
  hive_id: optional(hiveId),
  worker_id: optional(workerId),
  keep_alive: keepAlive,
};

const embedInput: Spec<string[]> = (v, field) => {
  if (typeof v === "string") return [string({ nonEmpty: true })(v, field)];
  return list(string({ nonEmpty: true }), { nonEmpty: true })(v, field);
};

// ---- operations --------------------------------------------------------------------------------

const operationSpecs = {
  status: object({}),
  hive_start: object({ hive_id: hiveIdDefault }),
  hive_stop: object({ hive_id: hiveIdDefault }),
  hive_list: object({}),
  hive_status: object({ hive_id: hiveIdDefault }),
  worker_spawn: object({
    hive_id: hiveIdDefault,
    model: withDefault(modelId, DEFAULT_MODEL),
    device: withDefault(device, "auto"),
    gpu_layers: withDefault(gpuLayers, "auto" as GpuLayers),
    context_size: optional(number({ integer: true, min: 64 })),
    parallel: withDefault(number({ integer: true, min: 1, max: 64 }), 1),
    keep_alive: keepAlive,
  }),
  worker_list: object({ hive_id: hiveIdDefault }),
  worker_stop: object({ hive_id: hiveIdDefault, worker_id: workerId }),
  model_list: object({ hive_id: hiveIdDefault }),
  model_get: object({ hive_id: hiveIdDefault, model: modelId }),
  model_download: object({
    hive_id: hiveIdDefault,
    model: string({
      nonEmpty: true,
      maxLength: 4096,
      pattern: MODEL_SOURCE_PATTERN,
      patternText: 'must be an http:// or https:// URL of a .gguf file, or "hf:<owner>/<repo>/<file>.gguf".',
    }),
    name: optional(modelId),
  }),
  model_delete: object({ hive_id: hiveIdDefault, model: modelId }),
  model_import: object({
    hive_id: hiveIdDefault,
    path: string({ nonEmpty: true, maxLength: 4096, pattern: /^\//, patternText: "must be an absolute path." }),
    name: optional(modelId),
  }),
  embed: object({
    input: embedInput,
    model: withDefault(modelId, DEFAULT_MODEL),
    hive_id: optional(hiveId),
    worker_id: optional(workerId),
    keep_alive: keepAlive,
  }),
  infer: object(samplingFields),
};

type Specs = typeof operationSpecs;
export type OperationName = keyof Specs;
export type OperationOf<N extends OperationName> = { operation: N } & (Specs[N] extends Spec<infer T> ? T : never);
export type Operation = { [N in OperationName]: OperationOf<N> }[OperationName];
export type InferOperation = OperationOf<"infer">;
export type EmbedOperation = OperationOf<"embed">;

export const OPERATION_NAMES = Object.keys(operationSpecs) as OperationName[];
/** Operations a hive runs itself (the queen forwards them to the hive named by hive_id). */
export const HIVE_OPERATIONS = [
  "worker_spawn", "worker_list", "worker_stop", "model_list", "model_get", "model_download", "model_delete", "model_import",
] as const satisfies readonly OperationName[];
export const QUEEN_OPERATIONS = ["status", "hive_start", "hive_stop", "hive_list", "hive_status"] as const satisfies readonly OperationName[];

/**
 * Validates a request body against the operations a daemon accepts. Throws RbeeError with the
 * contract's codes: INVALID_REQUEST naming `body` or the field, UNKNOWN_OPERATION listing `accepted`.
 */
export function parseOperation<N extends OperationName>(body: unknown, accepted: readonly N[]): OperationOf<N> {
  if (!isPlainObject(body)) throw invalid("body", "must be a JSON object holding an operation.");
  const name = body["operation"];
  const list = accepted.join(", ");
  if (typeof name !== "string") {
    const what = name === undefined ? "is missing" : "must be a string";
    throw new RbeeError("UNKNOWN_OPERATION", `The field "operation" ${what}; this daemon accepts: ${list}.`);
  }
  if (!(accepted as readonly string[]).includes(name))
    throw new RbeeError("UNKNOWN_OPERATION", `Unknown operation "${name.slice(0, 64)}"; this daemon accepts: ${list}.`);
  const spec = operationSpecs[name as N] as Spec<object>;
  const parsed = { operation: name, ...spec(body, "body") } as OperationOf<N>;
  if (name === "infer") {
    const op = parsed as unknown as InferOperation;
    if (op.prompt === undefined && op.messages === undefined) throw invalid("prompt", 'give exactly one of "prompt" (a string) or "messages" (a list).');
    if (op.prompt !== undefined && op.messages !== undefined) throw invalid("messages", 'give exactly one of "prompt" or "messages", not both.');
  }
  return parsed;
}

const sameValue = (a: unknown, b: unknown): boolean =>
  a === b || (typeof a === "object" && typeof b === "object" && a !== null && b !== null && JSON.stringify(a) === JSON.stringify(b));

/**
 * An operation as a tier forwards it downstream: without the fields that hold their default (every tier applies
 * the same defaults again). Parsing already dropped unknown fields, so a body that fit the 1 MiB limit at the
 * first tier fits it at the next ones too. Anything that is not a known operation is returned as it is.
 */
export function compactOperation<T extends object>(op: T): T {
  const name = (op as { operation?: unknown }).operation;
  if (typeof name !== "string" || !(OPERATION_NAMES as string[]).includes(name)) return op;
  const out: Record<string, unknown> = { ...(op as Record<string, unknown>) };
  for (const key of Object.keys(op)) {
    if (key === "operation") continue;
    const { [key]: value, ...rest } = out;
    try {
      if (sameValue((parseOperation(rest, [name as OperationName]) as Record<string, unknown>)[key], value)) delete out[key];
    } catch {
      // a required field
    }
  }
  return out as T;
}

// ---- events ------------------------------------------------------------------------------------

export type Level = "debug" | "info" | "warn" | "error";
export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export type EndStatus = "completed" | "failed" | "cancelled";
export type FinishReason = "stop" | "length";

export interface EventBase {
  job_id: string;
  correlation_id: string;
  path: string[];
}
export interface NarrationData extends EventBase {
  actor: string;
  node: string | null;
  action: string;
  target: string | null;
  human: string;
  level: Level;
  ts: string;
}
export interface ProgressData extends EventBase {
  action: string;
  target: string | null;
  done: number;
  total: number | null;
  unit: string;
}
export interface TokenData extends EventBase {
  text: string;
  index: number;
}
export interface DataData extends EventBase {
  action: string;
  payload: unknown;
}
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}
export interface Timing {
  ttft_ms: number;
  total_ms: number;
  tokens_per_s: number;
}
export interface EndData extends EventBase {
  status: EndStatus;
  error?: { code: ErrorCode; message: string };
  finish_reason?: FinishReason;
  usage?: Usage;
  timing?: Timing;
}

export interface EventDataMap {
  narration: NarrationData;
  progress: ProgressData;
  token: TokenData;
  data: DataData;
  end: EndData;
}
export type EventType = keyof EventDataMap;
export const EVENT_TYPES: readonly EventType[] = ["narration", "progress", "token", "data", "end"];

/** One event of a job stream: `id` is its SSE id within the stream it was read from. */
export type JobEvent = { [E in EventType]: { id: number; event: E; data: EventDataMap[E] } }[EventType];
export type EventPayload<E extends EventType> = Omit<EventDataMap[E], keyof EventBase>;

export const isEventType = (v: string): v is EventType => (EVENT_TYPES as readonly string[]).includes(v);

// ---- HTTP shapes --------------------------------------------------------------------------------

export interface CreateJobResponse {
  job_id: string;
  sse_url: string;
}
export interface JobSummary {
  job_id: string;
  operation: string;
  status: JobStatus;
  correlation_id: string;
  /** Every field is always present: null when the job has no parent or has not finished. */
  parent_job_id: string | null;
  created_at: string;
  finished_at: string | null;
}
