import { CancelledError, RbeeError, toRbeeError } from "../../shared/errors.js";
import { newCorrelationId } from "../../shared/ids.js";
import type { Job } from "../../shared/job.js";
import { JobServer } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import type { EmbedOperation, InferOperation } from "../../shared/protocol.js";
import { VERSION } from "../../shared/version.js";
import type { WorkerConfig } from "./config.js";
import { Engine, type Prompt, type Slot } from "./engine.js";
import { SlotPool, type Lease } from "./slots.js";
import { WorkerMetrics } from "./worker-metrics.js";

export interface WorkerOptions {
  token?: string | undefined;
  logFile?: string | undefined;
  /** Called after a failed load, once its `end` has reached a reader (or after a grace period). */
  onLoadFailed?: (err: RbeeError) => void;
}

export type WorkerState = "loading" | "ready" | "busy" | "stopping";

/** How long a failed load lingers so whoever follows the load job reads its end before the worker exits. */
const FAILED_LOAD_GRACE_MS = 10_000;

/** One loaded model behind the job API: a load job, then infer and embed on a pool of sequence slots. */
export class Worker {
  readonly server: JobServer<"infer" | "embed">;
  readonly metrics: WorkerMetrics;
  readonly loadJob: Job;
  private engine: Engine | undefined;
  private readonly pool: SlotPool<Slot>;
  private stopping = false;
  private lastUsed = new Date();
  private loading: Promise<void> = Promise.resolve();
  private loadEndRead: () => void = () => {};

  constructor(readonly config: WorkerConfig, private readonly options: WorkerOptions = {}) {
    this.server = new JobServer({
      service: "llm-worker-rbee",
      version: VERSION,
      node: config.workerId,
      token: options.token,
      logger: new Logger("llm-worker-rbee", config.workerId, options.logFile),
      operations: { infer: (op, job) => this.infer(op, job), embed: (op, job) => this.embed(op, job) },
      info: () => this.info(),
      routes: (router) => {
        router.post("/v1/shutdown", (ctx) => {
          ctx.status = 202;
          ctx.body = { status: "stopping" };
          setImmediate(() => this.server.requestStop("POST /v1/shutdown"));
        });
        // notices when the load job's stream has been read to its end (see FAILED_LOAD_GRACE_MS)
        router.get("/v1/jobs/:id/stream", async (ctx, next) => {
          await next();
          if (ctx.params["id"] === this.loadJob.id) ctx.res.once("finish", () => this.loadJob.finished && this.loadEndRead());
        });
      },
    });
    this.metrics = new WorkerMetrics(this.server.metrics.registry);
    this.metrics.slots.set(config.parallel);
    this.pool = new SlotPool<Slot>(config.maxQueue);
    this.pool.onChange = () => {
      this.metrics.busySlots.set(this.pool.busy);
      this.metrics.queued.set(this.pool.queued);
    };
    this.loadJob = this.server.registry.create({
      operation: "load",
      correlationId: config.correlationId || newCorrelationId(),
      ...(config.parentJobId ? { parentJobId: config.parentJobId } : {}),
    });
  }

  get state(): WorkerState {
    if (this.stopping) return "stopping";
    if (!this.engine) return "loading";
    return this.pool.busy >= this.pool.size ? "busy" : "ready";
  }

  /** Starts loading the model (after the port is bound, so `listening` comes first). */
  startLoad(): void {
    this.loading = this.server.registry.run(this.loadJob, (job) => this.load(job)).then(() => this.afterLoad());
  }

  private async load(job: Job): Promise<void> {
    const c = this.config;
    const started = performance.now();
    job.narrate("load_model", `Loading ${c.modelId} from ${c.modelPath} (device ${c.device}, gpu layers ${c.gpuLayers}, ${c.parallel} slot(s)).`, { target: c.modelId });
    const engine = await Engine.load(c, {
      narrate: (action, human, level) => job.narrate(action, human, { target: c.modelId, level: level ?? "info" }),
      progress: (done, total) => job.progress("load_model", c.modelId, done, total, "layers"),
      log: (level, message) => this.server.logger[level]("llama_cpp", message, { job_id: job.id, correlation_id: job.correlationId }),
    }, job.signal).catch((err: unknown) => {
      // node-llama-cpp ends an aborted load with its own error; the job is cancelled, not failed
      throw job.signal.aborted ? job.signal.reason : err;
    });
    if (job.signal.aborted) {
      await engine.dispose();
      throw job.signal.reason;
    }
    this.engine = engine;
    this.metrics.loadSeconds.set((performance.now() - started) / 1000);
    this.lastUsed = new Date();
    this.pool.add(engine.slots);
  }

  private async afterLoad(): Promise<void> {
    if (this.loadJob.status === "completed") return;
    const end = this.loadJob.events.at(-1)?.event;
    const error = end?.event === "end" && end.data.error ? new RbeeError(end.data.error.code, end.data.error.message) : new RbeeError("INTERNAL", "The model failed to load.");
    this.pool.close(new RbeeError(error.code, `The model failed to load: ${error.message}`));
    if (this.stopping) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, FAILED_LOAD_GRACE_MS);
      this.loadEndRead = () => {
        clearTimeout(t);
        // the last bytes still have to leave the socket
        setTimeout(resolve, 50);
      };
    });
    this.options.onLoadFailed?.(error);
  }

  info(): Record<string, unknown> {
    const c = this.config;
    const e = this.engine?.info;
    return {
      worker_id: c.workerId,
      model: c.modelId,
      model_path: c.modelPath,
      state: this.state,
      device: c.device,
      gpu: e?.gpu ?? false,
      gpu_layers: e?.gpu_layers ?? 0,
      total_layers: e?.total_layers ?? 0,
      memory: e?.memory ?? {},
      context_size: e?.context_size ?? c.contextSize ?? 0,
      parallel: c.parallel,
      threads: e?.threads ?? c.threads ?? 0,
      load_job_id: this.loadJob.id,
      busy_slots: this.pool.busy,
      queued: this.pool.queued,
      max_queue: c.maxQueue,
      last_used: this.lastUsed.toISOString(),
      pid: process.pid,
    };
  }

  /** Waits in line for a sequence slot, telling the job its place. */
  private async acquire(job: Job): Promise<Lease<Slot>> {
    const lease = await this.pool.acquire({
      signal: job.signal,
      onQueued: (place, busy) => {
        job.markQueued();
        const why = this.engine ? `all ${busy} slot(s) are busy` : "the model is still loading";
        job.narrate("queued", `Waiting for a free slot: place ${place} in line (${why}).`);
      },
    });
    job.markRunning();
    this.lastUsed = new Date();
    return lease;
  }

  private async infer(op: InferOperation, job: Job) {
    let prompt: Prompt | undefined = this.engine?.prepare(op);
    const lease = await this.acquire(job);
    const engine = this.engine as Engine;
    const slot = lease.item;
    let ok = false;
    try {
      prompt ??= engine.prepare(op);
      job.narrate("generate", `Generating on slot ${slot.index + 1}: ${prompt.tokens.length} prompt tokens, up to ${op.max_tokens} new ones.`, { level: "debug" });
      const result = await engine.generate(slot, prompt, {
        maxTokens: op.max_tokens,
        temperature: op.temperature,
        topP: op.top_p,
        topK: op.top_k,
        seed: op.seed,
        stop: op.stop ?? [],
        ignoreEos: op.ignore_eos,
      }, {
        onText: (text) => {
          if (job.tokenCount === 0) this.metrics.ttft.observe((Date.now() - job.createdAt) / 1000);
          job.token(text);
        },
        onPromptProgress: (done, total) => job.progress("prompt", null, done, total, "tokens"),
        onContextShift: (dropped) => job.narrate("context_shift", `The context is full: dropped the ${dropped} oldest generated tokens, kept the prompt.`, { level: "debug" }),
      }, job.signal);
      ok = true;
      this.metrics.tokens.inc(result.completionTokens);
      this.metrics.promptTokens.inc(prompt.tokens.length);
      const tps = job.timing().tokens_per_s;
      if (tps > 0) this.metrics.tokensPerSecond.observe(tps);
      return { finish_reason: result.finishReason, usage: { prompt_tokens: prompt.tokens.length, completion_tokens: result.completionTokens } };
    } finally {
      // a failure may leave the sequence half-written; a cancel stops between decodes and leaves it whole
      if (!ok && !job.signal.aborted) await slot.sequence.clearHistory().catch(() => {});
      this.lastUsed = new Date();
      lease.release();
    }
  }

  private async embed(op: EmbedOperation, job: Job) {
    if (!this.engine) {
      job.markQueued();
      job.narrate("queued", "Waiting for the model to load.");
      await this.whenLoaded(job.signal);
      job.markRunning();
    }
    this.lastUsed = new Date();
    const { embeddings, promptTokens } = await (this.engine as Engine).embed(op.input, job.signal);
    this.metrics.promptTokens.inc(promptTokens);
    this.lastUsed = new Date();
    job.data("embed", { embeddings, usage: { prompt_tokens: promptTokens } });
  }

  /** Resolves once the model is loaded; rejects with the load error or the signal's reason. */
  private whenLoaded(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      void this.loading.then(() => {
        signal.removeEventListener("abort", onAbort);
        if (this.engine) resolve();
        else reject(new RbeeError("INTERNAL", "The model failed to load."));
      });
    });
  }

  /** Cancels every job, waits for slots to come back, then frees the model. */
  async dispose(): Promise<void> {
    this.stopping = true;
    this.server.registry.cancelAll("The worker is stopping.");
    this.pool.close(new CancelledError("The worker is stopping."));
    const deadline = Date.now() + 5000;
    while ((this.pool.busy > 0 || !this.loadJob.finished) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.loading.catch(() => {});
    await this.engine?.dispose().catch((e: unknown) => this.server.logger.error("shutdown", `Freeing the model failed: ${toRbeeError(e).message}`));
  }
}
