import type { ErrorCode } from "../../shared/errors.js";
import { RBEE_TINY_ID } from "../../shared/rbee-tiny.js";
import type { DeviceInfo, ModelInfo, WorkerInfo } from "./heartbeat.js";

/** What placement knows of one hive: its last heartbeat plus the queen's own in-flight count per worker. */
export interface HiveView {
  hive_id: string;
  online: boolean;
  devices: readonly DeviceInfo[];
  workers: readonly WorkerInfo[];
  models: readonly ModelInfo[];
  /** queen jobs running on each worker now, keyed by worker id (fresher than the heartbeat's busy_slots) */
  inflight?: Readonly<Record<string, number>>;
}

export interface PlacementRequest {
  model: string;
  hive_id?: string | undefined;
  worker_id?: string | undefined;
}

export type Placement =
  /** run on this worker (the hive gets the job with worker_id pinned) */
  | { kind: "worker"; hive_id: string; worker_id: string; reason: string }
  /** send the job to this hive, which spawns a worker or queues it on one it has */
  | { kind: "hive"; hive_id: string; worker_id?: string; reason: string; level: "info" | "warn" }
  | { kind: "error"; code: ErrorCode; message: string };

/** rbee-tiny's size before a hive has written it (about 3.3 MB). */
export const TINY_SIZE_ESTIMATE = 4 * 1024 * 1024;
/** Weights plus KV cache and compute buffers: a worker needs about this much more than the file. */
export const MEMORY_HEADROOM = 1.2;

const MiB = 1024 * 1024;
const mib = (n: number): string => `${Math.round(n / MiB)} MiB`;

const slotsOf = (w: WorkerInfo): number => w.parallel ?? 1;
// A "busy" worker without busy_slots has every slot taken (contract: busy = all slots in use).
const reportedBusy = (w: WorkerInfo): number => w.busy_slots ?? (w.state === "busy" ? slotsOf(w) : 0);
const busyOf = (w: WorkerInfo, hive: HiveView): number => Math.max(reportedBusy(w), hive.inflight?.[w.worker_id] ?? 0);
const freeSlots = (w: WorkerInfo, hive: HiveView): number =>
  w.state === "ready" || w.state === "busy" ? slotsOf(w) - busyOf(w, hive) : 0;

/** The model's file size on that hive, or rbee-tiny's estimate; undefined when the hive cannot run it. */
function modelSize(hive: HiveView, model: string): number | undefined {
  const entry = hive.models.find((m) => m.id === model);
  if (entry) return entry.size_bytes ?? (model === RBEE_TINY_ID ? TINY_SIZE_ESTIMATE : 0);
  if (model === RBEE_TINY_ID) return TINY_SIZE_ESTIMATE;
  if (hive.workers.some((w) => w.model === model)) return 0;
  return undefined;
}

interface Fit {
  hive: HiveView;
  tier: 0 | 1 | 2;
  gpuFree: number;
  ramFree: number;
  total: number;
  need: number;
}

/** How well a new worker for the model fits a hive: 0 in one GPU's free memory, 1 in free RAM, 2 neither. */
export function fitOf(hive: HiveView, size: number): Fit {
  const need = Math.ceil(size * MEMORY_HEADROOM);
  const gpus = hive.devices.filter((d) => d.kind !== "cpu");
  const gpuFree = Math.max(0, ...gpus.map((d) => d.memory_free));
  const ramFree = Math.max(0, ...hive.devices.filter((d) => d.kind === "cpu").map((d) => d.memory_free));
  const total = Math.max(0, ...hive.devices.map((d) => d.memory_total));
  const tier = gpus.length > 0 && gpuFree >= need ? 0 : ramFree >= need ? 1 : 2;
  return { hive, tier, gpuFree, ramFree, total, need };
}

/** Best spawn target first: fits on a GPU (most free VRAM), then in RAM (most free RAM), then the biggest machine. */
function compareFits(a: Fit, b: Fit): number {
  if (a.tier !== b.tier) return a.tier - b.tier;
  const key = (f: Fit): number => (f.tier === 0 ? f.gpuFree : f.tier === 1 ? f.ramFree : f.total);
  return key(b) - key(a) || a.hive.hive_id.localeCompare(b.hive.hive_id);
}

function fitReason(f: Fit, model: string): string {
  const id = f.hive.hive_id;
  if (f.tier === 0) return `hive ${id} has the most free GPU memory (${mib(f.gpuFree)} for ${model}, needs about ${mib(f.need)}); it spawns a worker`;
  if (f.tier === 1) return `hive ${id} has no GPU with room for ${model} (about ${mib(f.need)}) but ${mib(f.ramFree)} of free RAM; it spawns a CPU worker`;
  return `no online hive reports enough free memory for ${model} (about ${mib(f.need)}); trying hive ${id}, which may stop idle workers to make room`;
}

/**
 * Where an infer or embed job runs (CONTRACT.md section 4, `infer` placement). Pure: every input
 * is in `hives`, so each choice is unit-tested with injected hive states.
 */
export function place(req: PlacementRequest, hives: readonly HiveView[]): Placement {
  let candidates = hives.filter((h) => h.online);
  if (req.hive_id !== undefined) {
    const pinned = hives.find((h) => h.hive_id === req.hive_id);
    if (!pinned) return { kind: "error", code: "HIVE_NOT_FOUND", message: `No hive ${req.hive_id}: it is not in hives.conf and has never registered.` };
    if (!pinned.online) return { kind: "error", code: "HIVE_UNREACHABLE", message: `Hive ${req.hive_id} is offline (no heartbeat); start it with: rbee hive start -h ${req.hive_id}.` };
    candidates = [pinned];
  }
  if (candidates.length === 0) return { kind: "error", code: "HIVE_UNREACHABLE", message: "No hive is online; start one with: rbee hive start." };

  if (req.worker_id !== undefined) {
    for (const hive of hives) {
      const w = hive.workers.find((x) => x.worker_id === req.worker_id);
      if (!w) continue;
      if (!candidates.includes(hive)) {
        if (!hive.online) return { kind: "error", code: "HIVE_UNREACHABLE", message: `Worker ${req.worker_id} is on hive ${hive.hive_id}, which is offline.` };
        return { kind: "error", code: "WORKER_NOT_FOUND", message: `Worker ${req.worker_id} is on hive ${hive.hive_id}, not on the pinned hive ${req.hive_id}.` };
      }
      return { kind: "worker", hive_id: hive.hive_id, worker_id: w.worker_id, reason: `worker ${w.worker_id} on hive ${hive.hive_id} was asked for by worker_id` };
    }
    // A worker spawned since the last heartbeat: the pinned hive knows it better than we do.
    const only = candidates.length === 1 ? candidates[0] : undefined;
    if (req.hive_id !== undefined && only) return { kind: "hive", hive_id: only.hive_id, worker_id: req.worker_id, reason: `worker ${req.worker_id} is not in hive ${only.hive_id}'s last heartbeat; asking the hive`, level: "info" };
    return { kind: "error", code: "WORKER_NOT_FOUND", message: `No online hive has a worker ${req.worker_id}; see rbee worker list.` };
  }

  const withModel = candidates.flatMap((hive) => hive.workers.filter((w) => w.model === req.model).map((w) => ({ hive, w })));

  const free = withModel
    .map((x) => ({ ...x, slots: freeSlots(x.w, x.hive) }))
    .filter((x) => x.slots > 0)
    .sort((a, b) => b.slots - a.slots || a.hive.hive_id.localeCompare(b.hive.hive_id) || a.w.worker_id.localeCompare(b.w.worker_id));
  const best = free[0];
  if (best) {
    return { kind: "worker", hive_id: best.hive.hive_id, worker_id: best.w.worker_id, reason: `worker ${best.w.worker_id} on hive ${best.hive.hive_id} has ${req.model} loaded and ${best.slots} free slot${best.slots === 1 ? "" : "s"}` };
  }

  const loading = withModel.find((x) => x.w.state === "starting");
  if (loading) {
    return { kind: "hive", hive_id: loading.hive.hive_id, reason: `worker ${loading.w.worker_id} on hive ${loading.hive.hive_id} is loading ${req.model}; the job waits for it there`, level: "info" };
  }

  const fits = candidates
    .flatMap((hive) => {
      const size = modelSize(hive, req.model);
      return size === undefined ? [] : [fitOf(hive, size)];
    })
    .sort(compareFits);
  const roomy = fits[0];
  if (roomy && roomy.tier < 2) return { kind: "hive", hive_id: roomy.hive.hive_id, reason: fitReason(roomy, req.model), level: "info" };

  const busy = withModel.find((x) => x.w.state === "ready" || x.w.state === "busy");
  if (busy) {
    return { kind: "hive", hive_id: busy.hive.hive_id, reason: `every worker with ${req.model} is busy; the job queues on hive ${busy.hive.hive_id}`, level: "info" };
  }
  if (roomy) return { kind: "hive", hive_id: roomy.hive.hive_id, reason: fitReason(roomy, req.model), level: "warn" };

  const where = req.hive_id !== undefined ? `hive ${req.hive_id}` : "any online hive";
  return { kind: "error", code: "MODEL_NOT_FOUND", message: `Model ${req.model} is not in the catalog of ${where}; download or import it first (rbee model download / rbee model import).` };
}
