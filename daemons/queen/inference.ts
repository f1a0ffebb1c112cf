import { RbeeError } from "../../shared/errors.js";
import { LOCALHOST_HIVE_ID } from "../../shared/hives-conf.js";
import type { EndExtras, Job } from "../../shared/job.js";
import type { EmbedOperation, InferOperation, JobEvent } from "../../shared/protocol.js";
import type { HiveOps } from "./hive-ops.js";
import type { HiveRegistry } from "./hive-registry.js";
import { place, type Placement } from "./scheduler.js";

const WORKER = "llm-worker-rbee";

/** The worker a downstream event came from, when it says (worker narration names its worker as node). */
function workerOf(event: JobEvent): string | undefined {
  return event.event === "narration" && event.data.actor === WORKER && typeof event.data.node === "string" ? event.data.node : undefined;
}

/**
 * Runs `infer` and `embed` through the cluster: makes sure some hive runs (starting localhost on a
 * fresh machine), asks the scheduler where, tells why, and forwards the job to that hive, which
 * spawns a worker when it needs one, so the path is [queen, hive, worker].
 */
export class Inference {
  constructor(private readonly registry: HiveRegistry, private readonly hives: HiveOps) {}

  async run(op: InferOperation | EmbedOperation, job: Job): Promise<EndExtras> {
    const { registry } = this;
    await registry.reload(1000);
    const pinnedLocal = op.hive_id === LOCALHOST_HIVE_ID;
    if (pinnedLocal || (op.hive_id === undefined && !registry.anyOnline())) {
      if (!pinnedLocal && !registry.online(LOCALHOST_HIVE_ID)) job.narrate("hive_autostart", "No hive is online; the queen starts the localhost hive.", { target: LOCALHOST_HIVE_ID });
      await this.hives.ensureOnline(LOCALHOST_HIVE_ID, job);
    }
    const placement = place({ model: op.model, hive_id: op.hive_id, worker_id: op.worker_id }, registry.views());
    if (placement.kind === "error") throw new RbeeError(placement.code, placement.message);
    try {
      return await this.runOn(placement, op, job);
    } catch (err) {
      // The worker we picked from a heartbeat left since; the hive can still place the job itself.
      if (placement.kind !== "worker" || op.worker_id !== undefined || !(err instanceof RbeeError) || err.code !== "WORKER_NOT_FOUND") throw err;
      job.narrate("schedule", `Worker ${placement.worker_id} is gone; hive ${placement.hive_id} places the job itself.`, { target: placement.hive_id, level: "warn" });
      return this.runOn({ kind: "hive", hive_id: placement.hive_id, reason: "retry", level: "info" }, op, job);
    }
  }

  private async runOn(p: Exclude<Placement, { kind: "error" }>, op: InferOperation | EmbedOperation, job: Job): Promise<EndExtras> {
    const worker = p.worker_id;
    const where = worker !== undefined ? `worker ${worker} on hive ${p.hive_id}` : `hive ${p.hive_id}`;
    if (p.reason !== "retry") {
      job.narrate("schedule", `${op.operation} of ${op.model} goes to ${where}: ${p.reason}.`, { target: worker ?? p.hive_id, level: p.kind === "hive" ? p.level : "info" });
    }
    const track = this.registry.begin(p.hive_id, worker);
    try {
      const downstream = { ...op, hive_id: p.hive_id, ...(worker !== undefined ? { worker_id: worker } : {}) };
      return await this.hives.send(p.hive_id, job, downstream, {
        onEvent: (e) => {
          const w = workerOf(e);
          if (w !== undefined) track.setWorker(w);
        },
      });
    } finally {
      track.release();
    }
  }
}
