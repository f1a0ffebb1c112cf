import { invalid } from "../../shared/errors.js";
import { HIVE_ID_PATTERN } from "../../shared/protocol.js";
import { isPlainObject, list, number, object, optional, string, type Spec } from "../../shared/schema.js";

/** A device as a hive reports it (contract section 4): memory in bytes. */
export interface DeviceInfo {
  id: string;
  kind: string;
  name: string;
  memory_total: number;
  memory_free: number;
  [key: string]: unknown;
}

/** A worker as a hive reports it; the fields placement reads are checked, the rest kept as sent. */
export interface WorkerInfo {
  worker_id: string;
  model: string;
  state: string;
  parallel?: number;
  busy_slots?: number;
  device?: string;
  url?: string;
  last_used?: unknown;
  [key: string]: unknown;
}

/** A catalog model as a hive reports it. */
export interface ModelInfo {
  id: string;
  size_bytes?: number;
  [key: string]: unknown;
}

export interface Heartbeat {
  hive_id: string;
  url: string;
  version: string;
  devices: DeviceInfo[];
  workers: WorkerInfo[];
  models: ModelInfo[];
  /** The hive's --heartbeat-interval, from its X-Rbee-Heartbeat-Interval-Ms header: extra beats on changes never shorten it. */
  interval_ms?: number;
}

const bytes = number({ min: 0 });

/** Checks the fields named by `spec` but keeps every field the hive sent (status shows them as they are). */
const keep = <T>(spec: Spec<unknown>): Spec<T> => (v, field) => {
  spec(v, field);
  return v as T;
};

const device = keep<DeviceInfo>(object({ id: string({ nonEmpty: true }), kind: string(), name: string(), memory_total: bytes, memory_free: bytes }));
const worker = keep<WorkerInfo>(object({
  worker_id: string({ nonEmpty: true }),
  model: string(),
  state: string({ nonEmpty: true }),
  parallel: optional(number({ integer: true, min: 1 })),
  busy_slots: optional(number({ integer: true, min: 0 })),
  device: optional(string()),
  url: optional(string()),
}));
const model = keep<ModelInfo>(object({ id: string({ nonEmpty: true }), size_bytes: optional(bytes) }));

const httpUrl: Spec<string> = (v, field) => {
  const s = string({ nonEmpty: true, maxLength: 2048 })(v, field);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw invalid(field, `"${s.slice(0, 80)}" is not a URL.`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw invalid(field, "must be an http:// or https:// URL.");
  return s;
};

const heartbeatSpec = object({
  hive_id: string({ pattern: HIVE_ID_PATTERN, patternText: "must be a hive id (lowercase letters, digits, '.', '_', '-')." }),
  url: httpUrl,
  version: string(),
  devices: list(device),
  workers: list(worker),
  models: list(model),
});

/** Validates a heartbeat body; throws INVALID_REQUEST naming the first bad field. */
export function parseHeartbeat(body: unknown, intervalHeader?: string): Heartbeat {
  if (!isPlainObject(body)) throw invalid("body", "must be a JSON object (a hive heartbeat).");
  const beat: Heartbeat = heartbeatSpec(body, "body");
  const interval = Number(intervalHeader);
  if (intervalHeader && Number.isFinite(interval) && interval >= 10 && interval <= 3_600_000) beat.interval_ms = interval;
  return beat;
}
