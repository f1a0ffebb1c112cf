/**
 * Pure placement decisions of a hive: which worker serves a job, which device a new worker gets,
 * how many GPU layers, and which idle workers to stop so a new one fits. Everything the decisions
 * depend on (workers, devices, memory) comes in as arguments, so they are tested without hardware.
 */
import { invalid } from "../../shared/errors.js";
import type { GpuLayers } from "../../shared/protocol.js";

export type WorkerState = "starting" | "ready" | "busy" | "stopping";

/** What placement needs to know of a worker. */
export interface WorkerView {
  id: string;
  model: string;
  state: WorkerState;
  parallel: number;
  /** jobs this hive has running or waiting on the worker */
  inflight: number;
}

/** What placement needs to know of a device (a subset of the contract's device object). */
export interface DeviceView {
  id: string;
  kind: string;
  memory_total: number;
  memory_free: number;
}

export type Choice =
  | { kind: "use"; workerId: string; reason: string }
  | { kind: "spawn"; reason: string; fallback?: { workerId: string; reason: string } };

/** Jobs waiting on a worker beyond its free slots (a loading worker has no slot yet). */
export const waiting = (w: WorkerView): number => (w.state === "starting" ? w.inflight : Math.max(0, w.inflight - w.parallel));

const byLeast = <T>(items: T[], key: (t: T) => number): T | undefined =>
  items.reduce<T | undefined>((best, x) => (best === undefined || key(x) < key(best) ? x : best), undefined);

/**
 * Picks the worker for an infer/embed job of `model`: a ready worker with a free slot; else a
 * loading worker (it will serve soon); else a busy worker with less than one batch waiting; else
 * spawn, keeping the least-queued worker as a fallback should the spawn not fit.
 */
export function chooseWorker(workers: readonly WorkerView[], model: string, maxQueue: number): Choice {
  const mine = workers.filter((w) => w.model === model && w.state !== "stopping");
  const withSlot = mine.filter((w) => w.state !== "starting" && w.inflight < w.parallel);
  const free = byLeast(withSlot, (w) => w.inflight - w.parallel);
  if (free) return { kind: "use", workerId: free.id, reason: `it has ${model} loaded and a free slot (${free.inflight} of ${free.parallel} busy)` };
  const loading = byLeast(mine.filter((w) => w.state === "starting" && waiting(w) < maxQueue), waiting);
  if (loading) return { kind: "use", workerId: loading.id, reason: `it is loading ${model}; the job waits for it (${waiting(loading)} ahead)` };
  const shortQueue = byLeast(mine.filter((w) => waiting(w) < w.parallel && waiting(w) < maxQueue), waiting);
  if (shortQueue) return { kind: "use", workerId: shortQueue.id, reason: `its ${shortQueue.parallel} slots are busy but its queue is short (${waiting(shortQueue)} waiting)` };
  const queued = byLeast(mine.filter((w) => waiting(w) < maxQueue), waiting);
  const reason = mine.length === 0 ? `no worker has ${model} loaded` : `every worker with ${model} is busy with a long queue`;
  return queued
    ? { kind: "spawn", reason, fallback: { workerId: queued.id, reason: `a new worker does not fit, so the job queues on it (${waiting(queued)} waiting)` } }
    : { kind: "spawn", reason };
}

/** The device a new worker runs on: `cpu`, the asked GPU, or for `auto` the GPU with most free memory. */
export function resolveDevice(requested: string, devices: readonly DeviceView[]): DeviceView {
  const cpu: DeviceView = devices.find((d) => d.id === "cpu") ?? { id: "cpu", kind: "cpu", memory_total: 0, memory_free: 0 };
  const gpus = devices.filter((d) => d.kind !== "cpu");
  if (requested === "cpu") return cpu;
  if (requested === "auto") return gpus.reduce<DeviceView | undefined>((best, d) => (!best || d.memory_free > best.memory_free ? d : best), undefined) ?? cpu;
  const found = gpus.find((d) => d.id === requested);
  if (found) return found;
  const have = ["cpu", ...gpus.map((d) => d.id)].join(", ");
  throw invalid("device", `this hive has no device "${requested}"; it has: ${have}.`);
}

/** The `--gpu-layers` a worker gets; on a CPU device it is 0, with a warning when layers were asked for. */
export function resolveGpuLayers(requested: GpuLayers, device: DeviceView, hasGpu: boolean): { gpuLayers: GpuLayers; warning?: string } {
  if (device.kind !== "cpu") return { gpuLayers: requested };
  if (requested === "auto" || requested === 0) return { gpuLayers: 0 };
  const why = hasGpu ? "the worker runs on the CPU (device cpu)" : "this machine has no GPU";
  return { gpuLayers: 0, warning: `gpu_layers ${JSON.stringify(requested)} ignored: ${why}, so no layers are offloaded.` };
}

/** An idle worker that could be stopped to make room. */
export interface IdleCandidate {
  id: string;
  lastUsed: number;
  /** estimated bytes it holds on the device in question */
  estimate: number;
  keepAlive: number;
}

export interface FitPlan {
  fits: boolean;
  /** workers to stop, in order (least recently used first; keep_alive -1 ones last) */
  evict: string[];
  /** free bytes expected once they are stopped */
  freeAfter: number;
}

/**
 * Whether `need` bytes fit in `free`, after stopping idle workers least recently used first.
 * When even stopping all of them would not make room, nothing is stopped: the spawn fails instead.
 */
export function planFit(need: number, free: number, idle: readonly IdleCandidate[]): FitPlan {
  if (need <= free) return { fits: true, evict: [], freeAfter: free };
  const order = [...idle].sort((a, b) => Number(a.keepAlive === -1) - Number(b.keepAlive === -1) || a.lastUsed - b.lastUsed);
  const evict: string[] = [];
  let after = free;
  for (const w of order) {
    if (after >= need) break;
    evict.push(w.id);
    after += w.estimate;
  }
  return after >= need ? { fits: true, evict, freeAfter: after } : { fits: false, evict: [], freeAfter: free };
}

/** A worker as memory accounting sees it. */
export interface MemoryUser {
  device: string;
  estimate: number;
  /** still loading: the probe does not show its memory yet */
  starting: boolean;
}

/**
 * Bytes free for a new worker on `device`: system RAM is read fresh, so only workers still loading
 * are taken off it; GPU memory is as seen when the hive probed it, so every worker on the GPU is.
 * With `gpu_layers` auto the layers that do not fit spill to RAM, so RAM counts too. `known` is
 * false when the probe gave no numbers (nothing can be said, nothing is refused).
 */
export function availableMemory(
  device: DeviceView,
  gpuLayers: GpuLayers,
  devices: readonly DeviceView[],
  users: readonly MemoryUser[],
): { free: number; devices: string[]; known: boolean } {
  const cpu = devices.find((d) => d.id === "cpu");
  const ramFree = Math.max(0, (cpu?.memory_free ?? 0) - sum(users.filter((u) => u.device === "cpu" && u.starting)));
  if (device.kind === "cpu") return { free: ramFree, devices: ["cpu"], known: (cpu?.memory_total ?? 0) > 0 };
  const vramFree = Math.max(0, device.memory_free - sum(users.filter((u) => u.device === device.id)));
  if (gpuLayers === "auto") return { free: vramFree + ramFree, devices: [device.id, "cpu"], known: device.memory_total > 0 };
  return { free: vramFree, devices: [device.id], known: device.memory_total > 0 };
}

const sum = (users: readonly MemoryUser[]): number => users.reduce((s, u) => s + u.estimate, 0);
