/**
 * `worker_spawn`: model path from the catalog, device and GPU layers from the devices, a memory
 * fit (stopping idle workers least recently used first when it does not fit), then the launch.
 */
import { RbeeError } from "../../shared/errors.js";
import type { Job } from "../../shared/job.js";
import type { OperationOf } from "../../shared/protocol.js";
import type { Catalog } from "./catalog.js";
import type { HiveWorker } from "./hive-worker.js";
import { estimateWorkerMemory, mib, type MemoryEstimate } from "./memory.js";
import { availableMemory, planFit, resolveDevice, resolveGpuLayers, type DeviceView } from "./placement.js";
import type { Supervisor } from "./supervisor.js";

export type SpawnOperation = OperationOf<"worker_spawn">;

export interface SpawnContext {
  catalog: Catalog;
  supervisor: Supervisor;
  /** The hive's devices, memory read fresh (injectable for tests). */
  devices: () => Promise<DeviceView[]>;
  defaultKeepAlive: number;
  onEvict?: () => void;
}

export class Spawner {
  // Fit decisions run one at a time, so two spawns never both count on the same free memory.
  private fitting: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: SpawnContext) {}

  /** Spawns a worker and waits until its model is loaded; `reserve` keeps one job slot for the caller. */
  async spawn(job: Job, op: SpawnOperation, reserve = false): Promise<HiveWorker> {
    const { supervisor } = this.ctx;
    // The GPU probe (a child process, right after the hive starts) and the model's file (rbee-tiny is written on
    // first use) are independent: a cold start waits for the longer of the two, not both.
    const [known, modelPath] = await Promise.all([this.ctx.devices(), this.ctx.catalog.resolve(op.model)]);
    const chosen = resolveDevice(op.device, known);
    const { gpuLayers, warning } = resolveGpuLayers(op.gpu_layers, chosen, known.some((d) => d.kind !== "cpu"));
    if (warning) job.narrate("gpu_layers", warning, { level: "warn", target: op.model });
    const estimate = await estimateWorkerMemory(modelPath, op.context_size, op.parallel);
    const turn = this.fitting.then(async () => {
      // Read again inside the turn: the memory numbers must be fresh, not from before the wait.
      const devices = await this.ctx.devices();
      const device = devices.find((d) => d.id === chosen.id) ?? chosen;
      const free = await this.makeRoom(job, op.model, device, gpuLayers, devices, estimate);
      if (job.signal.aborted) throw job.signal.reason;
      const room = free === undefined ? "" : ` (about ${mib(estimate.total)} of ${mib(free)} free)`;
      job.narrate("worker_spawn", `Starting a worker for ${op.model} on ${device.id} with gpu_layers ${gpuLayers}${room}.`, { target: op.model });
      return supervisor.launch(job, {
        model: op.model,
        modelPath,
        device: device.id,
        gpuLayers,
        contextSize: op.context_size,
        parallel: op.parallel,
        keepAlive: op.keep_alive ?? this.ctx.defaultKeepAlive,
        estimate: estimate.total,
      }, reserve);
    });
    this.fitting = turn.catch(() => undefined);
    const { worker, ready } = await turn;
    await ready;
    job.narrate("worker_ready", `Worker ${worker.id} is ready at ${worker.url} with ${worker.model} (${worker.gpuLayers} of ${worker.totalLayers} layers on the GPU).`, { target: worker.id });
    job.data("worker_spawn", {
      worker_id: worker.id,
      url: worker.url,
      pid: worker.pid,
      model: worker.model,
      device: worker.device,
      gpu_layers: worker.gpuLayers,
      total_layers: worker.totalLayers,
    });
    return worker;
  }

  /** Stops idle workers until `need` fits; returns the free bytes then (undefined when unknown). */
  private async makeRoom(job: Job, model: string, device: DeviceView, gpuLayers: SpawnOperation["gpu_layers"], devices: DeviceView[], need: MemoryEstimate): Promise<number | undefined> {
    const workers = this.ctx.supervisor.list();
    const users = workers.map((w) => ({ device: w.device, estimate: w.spec.estimate, starting: w.phase === "starting" }));
    const room = availableMemory(device, gpuLayers, devices, users);
    if (!room.known) return undefined;
    const idle = workers
      .filter((w) => w.idle && room.devices.includes(w.device))
      .map((w) => ({ id: w.id, lastUsed: w.lastUsed, estimate: w.spec.estimate, keepAlive: w.keepAlive }));
    const plan = planFit(need.total, room.free, idle);
    if (!plan.fits) {
      const idleBytes = idle.reduce((s, w) => s + w.estimate, 0);
      const after = idle.length > 0 ? `, ${mib(room.free + idleBytes)} even after stopping ${idle.length} idle worker${idle.length > 1 ? "s" : ""}` : "";
      throw new RbeeError(
        "INSUFFICIENT_MEMORY",
        `${model} needs about ${mib(need.total)} on ${device.id} (weights ${mib(need.weights)}, KV cache ${mib(need.kvCache)}, overhead ${mib(need.overhead)}) but ${mib(room.free)} is free${after}; stop a worker or ask for a smaller context_size.`,
      );
    }
    for (const id of plan.evict) {
      const w = this.ctx.supervisor.get(id);
      if (!w) continue;
      const ago = Math.round((Date.now() - w.lastUsed) / 1000);
      job.narrate("worker_evict", `Stopping idle worker ${id} (${w.model}, last used ${ago} s ago) to free about ${mib(w.spec.estimate)} for ${model}.`, { target: id, level: "warn" });
      this.ctx.onEvict?.();
      await this.ctx.supervisor.stop(id, `evicted to make room for ${model}`);
    }
    return plan.freeAfter;
  }
}
