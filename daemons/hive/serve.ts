/**
 * `infer` and `embed` on a hive: the pinned worker, else the best worker for the model (see
 * placement.ts), else a new one spawned as a child job whose events nest under this one; then
 * the job is forwarded to the worker, so the worker's events arrive with the path grown by one.
 */
import { untilAborted } from "../../shared/async.js";
import { CancelledError, RbeeError } from "../../shared/errors.js";
import { forward } from "../../shared/job-client.js";
import type { JobRegistry } from "../../shared/job-registry.js";
import type { EndExtras, Job } from "../../shared/job.js";
import type { EmbedOperation, EndData, InferOperation } from "../../shared/protocol.js";
import type { HiveWorker } from "./hive-worker.js";
import { chooseWorker, waiting } from "./placement.js";
import type { SpawnOperation, Spawner } from "./spawn.js";
import type { Supervisor } from "./supervisor.js";

export interface ServeContext {
  hiveId: string;
  supervisor: Supervisor;
  spawner: Spawner;
  registry: JobRegistry;
  maxQueue: number;
}

type WorkOperation = InferOperation | EmbedOperation;

export async function serveOnWorker(job: Job, op: WorkOperation, ctx: ServeContext): Promise<EndExtras> {
  const worker = await place(job, op, ctx);
  try {
    const client = await untilAborted(worker.whenListening(), job.signal);
    const { hive_id: _h, worker_id: _w, keep_alive: _k, ...rest } = op;
    return await forward(job, client, { ...rest, model: worker.model }, { abort: worker.gone.signal });
  } catch (err) {
    if (err instanceof RbeeError && err.code === "WORKER_CRASHED") {
      job.narrate("worker_crashed", `${err.message} This job fails; the next one goes to another worker.`, { level: "error", target: worker.id });
    }
    throw err;
  } finally {
    ctx.supervisor.release(worker);
  }
}

/** Picks (or spawns) the worker and takes a job slot on it before any other job can decide. */
async function place(job: Job, op: WorkOperation, ctx: ServeContext): Promise<HiveWorker> {
  const { supervisor } = ctx;
  if (op.worker_id !== undefined) {
    const w = supervisor.get(op.worker_id);
    if (!w || w.phase === "stopping") {
      throw new RbeeError("WORKER_NOT_FOUND", `Hive ${ctx.hiveId} has no worker ${op.worker_id}${w ? " (it is stopping)" : ""}; see worker_list.`);
    }
    refuseFull(w, ctx);
    supervisor.acquire(w, op.keep_alive);
    job.narrate("worker_select", `Worker ${w.id} at ${w.url || "(starting)"} serves this job: it was asked for by worker_id.`, { target: w.id });
    return w;
  }
  const choice = chooseWorker(supervisor.list().map((w) => w.view()), op.model, ctx.maxQueue);
  if (choice.kind === "use") return take(job, op, supervisor.get(choice.workerId) as HiveWorker, choice.reason, ctx);
  job.narrate("worker_spawn", `Spawning a worker for ${op.model}: ${choice.reason}.`, { target: op.model });
  try {
    const w = await spawnNested(job, op, ctx);
    job.narrate("worker_select", `Worker ${w.id} at ${w.url} serves this job: it was spawned for it.`, { target: w.id });
    return w;
  } catch (err) {
    const fallback = choice.fallback ? supervisor.get(choice.fallback.workerId) : undefined;
    if (!fallback || fallback.phase === "stopping" || !(err instanceof RbeeError) || err.code !== "INSUFFICIENT_MEMORY") throw err;
    return take(job, op, fallback, choice.fallback?.reason ?? "", ctx);
  }
}

function take(job: Job, op: WorkOperation, w: HiveWorker, reason: string, ctx: ServeContext): HiveWorker {
  refuseFull(w, ctx);
  ctx.supervisor.acquire(w, op.keep_alive);
  job.narrate("worker_select", `Worker ${w.id} at ${w.url || "(starting)"} serves this job: ${reason}.`, { target: w.id });
  return w;
}

function refuseFull(w: HiveWorker, ctx: ServeContext): void {
  if (waiting(w.view()) >= ctx.maxQueue) {
    throw new RbeeError("QUEUE_FULL", `Worker ${w.id} already has ${waiting(w.view())} jobs waiting (--max-queue ${ctx.maxQueue}); try again later.`);
  }
}

/**
 * Spawns a worker as a child job of `job` (listed with it as parent), relaying its events, so the
 * spawn's narration nests under this job. The new worker comes back with this job's slot taken.
 */
async function spawnNested(job: Job, op: WorkOperation, ctx: ServeContext): Promise<HiveWorker> {
  const spawnOp: SpawnOperation = {
    operation: "worker_spawn",
    hive_id: ctx.hiveId,
    model: op.model,
    device: "auto",
    gpu_layers: "auto",
    parallel: 1,
    ...(op.keep_alive !== undefined ? { keep_alive: op.keep_alive } : {}),
  };
  const child = ctx.registry.create({ operation: "worker_spawn", correlationId: job.correlationId, parentJobId: job.id });
  let worker: HiveWorker | undefined;
  const done = ctx.registry.run(child, async (j) => {
    worker = await ctx.spawner.spawn(j, spawnOp, true);
  });
  const onCancel = (): void => void child.cancel("The job that asked for this worker was cancelled.");
  if (job.signal.aborted) onCancel();
  else job.signal.addEventListener("abort", onCancel, { once: true });
  let end: EndData | undefined;
  try {
    for await (const event of child.stream()) {
      if (event.event === "end") end = event.data;
      else job.relay(event);
    }
  } finally {
    job.signal.removeEventListener("abort", onCancel);
  }
  await done;
  if (end?.status === "completed" && worker) return worker;
  if (worker) ctx.supervisor.release(worker);
  if (end?.status === "failed" && end.error) throw new RbeeError(end.error.code, end.error.message);
  throw job.signal.aborted ? job.signal.reason : new CancelledError(end?.error?.message ?? "The worker spawn was cancelled.");
}

