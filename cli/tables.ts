import type { JobSummary } from "../shared/protocol.js";
import { formatBytes } from "../shared/units.js";
import { ago, cell, formatCount, formatMs, formatSeconds } from "./format.js";

/** Results as tables: the same rows feed the plain text output and the Ink components. */

export interface Table {
  headers: string[];
  rows: string[][];
}

export interface HiveView {
  hiveId: string;
  state: string;
  url: string;
  lastSeen: string;
  devices: Table;
  workers: Table;
  models: Table;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const objects = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

export function deviceTable(devices: unknown): Table {
  return {
    headers: ["DEVICE", "KIND", "NAME", "MEMORY FREE / TOTAL"],
    rows: objects(devices).map((d) => {
      const total = num(d["memory_total"]);
      const free = num(d["memory_free"]);
      return [cell(d["id"]), cell(d["kind"]), cell(d["name"]), total === undefined ? "-" : `${free === undefined ? "?" : formatBytes(free)} / ${formatBytes(total)}`];
    }),
  };
}

export interface WorkerIdle {
  /** Serving a job now (state busy, or a busy slot). */
  busy: boolean;
  /** Seconds since its last job ended; 0 while it serves one; null when unknown (starting, no last_used). */
  idleS: number | null;
  /** keep_alive - idle in seconds (never below 0); -1 forever; null when unknown. */
  leftS: number | null;
}

/** How long a worker has been idle and how long its keep_alive still keeps it loaded, from `last_used` and `keep_alive`. */
export function workerIdle(w: Obj, now = Date.now()): WorkerIdle {
  const keepAlive = num(w["keep_alive"]);
  const used = typeof w["last_used"] === "string" ? Date.parse(w["last_used"]) : num(w["last_used"]) ?? Number.NaN;
  const busy = w["state"] === "busy" || (num(w["busy_slots"]) ?? 0) > 0;
  // The keep_alive timer starts when the worker goes idle, so a busy one has all of it left.
  const idleS = busy ? 0 : w["state"] === "ready" && Number.isFinite(used) ? Math.max(0, (now - used) / 1000) : null;
  const leftS = keepAlive === undefined ? null : keepAlive < 0 ? -1 : idleS === null ? null : Math.max(0, keepAlive - idleS);
  return { busy, idleS, leftS };
}

export function workerTable(workers: unknown, now = Date.now()): Table {
  return {
    // Lifecycle columns first, so an 80-column terminal still shows them; hardware and URL after.
    headers: ["WORKER", "MODEL", "STATE", "SLOTS", "IDLE", "KEEP-ALIVE LEFT", "DEVICE", "GPU LAYERS", "URL"],
    rows: objects(workers).map((w) => {
      const busy = num(w["busy_slots"]);
      const parallel = num(w["parallel"]);
      const layers = w["gpu_layers"];
      const total = num(w["total_layers"]);
      const idle = workerIdle(w, now);
      return [
        cell(w["worker_id"]),
        cell(w["model"]),
        cell(w["state"]),
        parallel === undefined ? "-" : `${busy ?? 0}/${parallel}`,
        idle.busy ? "busy" : idle.idleS === null ? "-" : formatSeconds(idle.idleS),
        idle.leftS === null ? "-" : idle.leftS < 0 ? "forever" : formatSeconds(Math.ceil(idle.leftS)),
        cell(w["device"]),
        layers === undefined ? "-" : total === undefined ? cell(layers) : `${cell(layers)}/${total}`,
        cell(w["url"]),
      ];
    }),
  };
}

export function modelTable(models: unknown): Table {
  return {
    headers: ["MODEL", "SIZE", "ARCH", "QUANT", "PARAMS", "CONTEXT", "LAYERS"],
    rows: objects(models).map((m) => {
      const size = num(m["size_bytes"]);
      const params = num(m["parameters"]);
      return [
        cell(m["id"]),
        size === undefined ? "-" : formatBytes(size),
        cell(m["architecture"]),
        cell(m["quantization"]),
        params === undefined ? cell(m["parameters"]) : formatCount(params),
        cell(m["context_length"]),
        cell(m["layers"]),
      ];
    }),
  };
}

export function hiveTable(hives: unknown, now = Date.now()): Table {
  return dropEmptyColumns({
    headers: ["HIVE", "STATE", "URL", "HOST", "CONFIGURED", "VERSION", "LAST SEEN", "WORKERS", "MODELS"],
    rows: objects(hives).map((h) => [
      cell(h["hive_id"] ?? h["id"]),
      cell(h["state"]),
      cell(h["url"]),
      cell(h["host"]),
      h["configured"] === undefined ? "-" : h["configured"] ? "yes" : "no",
      cell(h["version"]),
      h["last_seen"] === undefined ? "-" : ago(h["last_seen"], now),
      Array.isArray(h["workers"]) ? String(h["workers"].length) : "-",
      Array.isArray(h["models"]) ? String(h["models"].length) : "-",
    ]),
  });
}

/** Leaves out columns no row has a value for (daemons differ in what they report). */
export function dropEmptyColumns(t: Table): Table {
  const keep = t.headers.map((_, i) => i === 0 || t.rows.some((r) => (r[i] ?? "-") !== "-"));
  return { headers: t.headers.filter((_, i) => keep[i]), rows: t.rows.map((r) => r.filter((_, i) => keep[i])) };
}

/** One hive object (from status or hive_status) as its header and three tables. */
export function hiveView(h: Obj, now = Date.now()): HiveView {
  return {
    hiveId: cell(h["hive_id"] ?? h["id"]),
    state: cell(h["state"]),
    url: cell(h["url"]),
    lastSeen: h["last_seen"] === undefined ? "-" : ago(h["last_seen"], now),
    devices: deviceTable(h["devices"]),
    workers: workerTable(h["workers"], now),
    models: modelTable(h["models"]),
  };
}

/** The hives a status-like payload describes: `{hives:[...]}` from status, or one hive from hive_status. */
export function statusHives(payload: unknown): Obj[] | undefined {
  if (!isObj(payload)) return undefined;
  if (Array.isArray(payload["hives"]) && objects(payload["hives"]).some((h) => "devices" in h || "workers" in h || "models" in h)) {
    return objects(payload["hives"]);
  }
  if (("hive_id" in payload || "devices" in payload) && (Array.isArray(payload["devices"]) || Array.isArray(payload["workers"]))) return [payload];
  return undefined;
}

export function jobTable(jobs: JobSummary[], now = Date.now()): Table {
  return {
    headers: ["JOB", "OPERATION", "STATUS", "STARTED", "TOOK", "CORRELATION", "PARENT"],
    rows: jobs.map((j) => {
      const start = Date.parse(j.created_at);
      const end = j.finished_at ? Date.parse(j.finished_at) : Number.NaN;
      return [j.job_id, j.operation, j.status, ago(start, now), Number.isFinite(end) ? formatMs(end - start) : "-", j.correlation_id, j.parent_job_id ?? "-"];
    }),
  };
}

export function columnWidths(t: Table): number[] {
  return t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length)));
}

export function tableText(t: Table, indent = ""): string {
  if (t.rows.length === 0) return "";
  const w = columnWidths(t);
  const line = (r: string[]) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] as number))).join("  ").trimEnd();
  return [line(t.headers), ...t.rows.map(line)].join("\n");
}

export function statusText(hives: Obj[], now = Date.now()): string {
  if (hives.length === 0) return "No hives.";
  const out: string[] = [];
  for (const h of hives) {
    const v = hiveView(h, now);
    out.push(`hive ${v.hiveId}  ${v.state}  ${v.url}  last seen ${v.lastSeen}`);
    for (const [name, t] of [["devices", v.devices], ["workers", v.workers], ["models", v.models]] as const) {
      out.push(t.rows.length ? tableText(t, "  ") : `  no ${name}`);
    }
    out.push("");
  }
  return out.join("\n").trimEnd();
}

/** Any `data` payload as readable text: status tables, list tables, vectors, or `key: value` lines. */
export function payloadText(action: string, payload: unknown, now = Date.now()): string {
  const hives = statusHives(payload);
  if (hives) return statusText(hives, now);
  if (isObj(payload)) {
    if (Array.isArray(payload["embeddings"])) return payload["embeddings"].map((v) => JSON.stringify(v)).join("\n");
    const lists: [string, (v: unknown) => Table][] = [["hives", (v) => hiveTable(v, now)], ["workers", (v) => workerTable(v, now)], ["models", modelTable]];
    for (const [key, table] of lists) {
      if (Array.isArray(payload[key])) return tableText(table(payload[key])) || `No ${key}.`;
    }
    return Object.entries(payload).map(([k, v]) => `${k}: ${typeof v === "number" && /bytes|^memory_/.test(k) ? `${formatBytes(v)} (${v})` : cell(v)}`).join("\n");
  }
  return action && payload === undefined ? "" : cell(payload);
}
