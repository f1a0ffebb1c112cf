import type { JobClient } from "../../shared/job-client.js";
import type { GpuLayers } from "../../shared/protocol.js";
import type { IdleView } from "./idle.js";
import type { WorkerState, WorkerView } from "./placement.js";
import type { WorkerProcess } from "./worker-process.js";

/** What a worker says on `GET /v1/info` (the fields the hive reads). */
export interface WorkerInfo {
  state?: string;
  load_job_id?: string;
  busy_slots?: number;
  parallel?: number;
  gpu_layers?: number;
  total_layers?: number;
  last_used?: string | number | null;
}

/** The contract's worker object. */
export interface WorkerJson {
  worker_id: string;
  hive_id: string;
  url: string;
  pid: number;
  model: string;
  device: string;
  state: WorkerState;
  gpu_layers: number;
  total_layers: number;
  parallel: number;
  busy_slots: number;
  keep_alive: number;
  last_used: string;
}

export interface WorkerSpec {
  model: string;
  modelPath: string;
  device: string;
  gpuLayers: GpuLayers;
  contextSize?: number | undefined;
  parallel: number;
  keepAlive: number;
  /** estimated bytes it takes once loaded */
  estimate: number;
}

/** One worker as the hive tracks it: its process, its client, its load and its idle clock. */
export class HiveWorker {
  phase: "starting" | "running" | "stopping" = "starting";
  url = "";
  port = 0;
  pid = 0;
  client: JobClient | undefined;
  proc: WorkerProcess | undefined;
  /** Aborted when the worker goes away: WORKER_CRASHED when it died, CANCELLED when it was stopped. */
  readonly gone = new AbortController();
  gpuLayers = 0;
  totalLayers = 0;
  keepAlive: number;
  /** jobs this hive runs or queues on it (tracked here, not polled, so placement is never stale) */
  inflight = 0;
  polledState: string | undefined;
  polledBusy = 0;
  lastUsed: number;
  idleSince: number;
  lastAnswer: number;
  poller: NodeJS.Timeout | undefined;
  private readyWaiters: { resolve: (c: JobClient) => void; reject: (e: unknown) => void }[] = [];

  constructor(readonly id: string, readonly spec: WorkerSpec, now: number) {
    this.keepAlive = spec.keepAlive;
    this.lastUsed = now;
    this.idleSince = now;
    this.lastAnswer = now;
    this.gone.signal.addEventListener("abort", () => {
      for (const w of this.readyWaiters) w.reject(this.gone.signal.reason);
      this.readyWaiters = [];
    }, { once: true });
  }

  get model(): string {
    return this.spec.model;
  }
  get device(): string {
    return this.spec.device;
  }
  get parallel(): number {
    return this.spec.parallel;
  }

  get state(): WorkerState {
    if (this.phase === "stopping" || this.polledState === "stopping") return "stopping";
    if (this.phase === "starting") return "starting";
    return this.inflight >= this.parallel || this.polledState === "busy" ? "busy" : "ready";
  }

  get busySlots(): number {
    return Math.max(Math.min(this.inflight, this.parallel), this.polledBusy);
  }

  /** Called once its URL is known. */
  listening(client: JobClient): void {
    this.client = client;
    for (const w of this.readyWaiters) w.resolve(client);
    this.readyWaiters = [];
  }

  /** Its client once it listens; rejects when it goes away first. */
  whenListening(): Promise<JobClient> {
    if (this.client) return Promise.resolve(this.client);
    if (this.gone.signal.aborted) return Promise.reject(this.gone.signal.reason);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Folds what the worker reported into what the hive knows (jobs sent to it directly count as use). */
  apply(info: WorkerInfo): void {
    this.polledState = info.state;
    if (typeof info.busy_slots === "number") this.polledBusy = info.busy_slots;
    if (typeof info.gpu_layers === "number") this.gpuLayers = info.gpu_layers;
    if (typeof info.total_layers === "number") this.totalLayers = info.total_layers;
    const used = typeof info.last_used === "string" ? Date.parse(info.last_used) : typeof info.last_used === "number" ? info.last_used : Number.NaN;
    if (Number.isFinite(used) && used > this.lastUsed) {
      this.lastUsed = used;
      if (this.inflight === 0) this.idleSince = Math.max(this.idleSince, used);
    }
  }

  view(): WorkerView {
    return { id: this.id, model: this.model, state: this.state, parallel: this.parallel, inflight: this.inflight };
  }

  idleView(): IdleView {
    return { id: this.id, state: this.state, inflight: this.inflight, busySlots: this.polledBusy, keepAlive: this.keepAlive, idleSince: this.idleSince };
  }

  get idle(): boolean {
    return this.state === "ready" && this.inflight === 0 && this.polledBusy === 0;
  }

  toJSON(hiveId: string): WorkerJson {
    return {
      worker_id: this.id,
      hive_id: hiveId,
      url: this.url,
      pid: this.pid,
      model: this.model,
      device: this.device,
      state: this.state,
      gpu_layers: this.gpuLayers,
      total_layers: this.totalLayers,
      parallel: this.parallel,
      busy_slots: this.busySlots,
      keep_alive: this.keepAlive,
      last_used: new Date(this.lastUsed).toISOString(),
    };
  }
}
