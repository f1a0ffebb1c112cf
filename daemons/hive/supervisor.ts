/**
 * The hive's workers: spawns `llm-worker-rbee` children, follows their load jobs, watches them
 * (child `exit` and a health poll), counts the jobs it sends them, and stops and reaps them.
 */
import { randomInt } from "node:crypto";
import * as path from "node:path";
import { binaryCommand } from "../../shared/binaries.js";
import { CancelledError, RbeeError } from "../../shared/errors.js";
import { randomId } from "../../shared/ids.js";
import { JobClient, follow } from "../../shared/job-client.js";
import type { Job } from "../../shared/job.js";
import type { Logger } from "../../shared/log.js";
import { ensureDir } from "../../shared/paths.js";
import { HiveWorker, type WorkerInfo, type WorkerSpec } from "./hive-worker.js";
import { CpuWatch } from "./cpu-watch.js";
import { findFreePort } from "../../shared/ports.js";
import { PortInUseError, WorkerProcess, describeExit } from "./worker-process.js";

/** Poll period of a worker's health, and how long one poll may take. */
const POLL_MS = 250;
const POLL_TIMEOUT_MS = 1000;
/** A worker silent this long is dead (the contract gives the hive 2 s to notice). */
const UNRESPONSIVE_MS = 1250;
/** After a loading worker exits, its load job's own `end` (INSUFFICIENT_MEMORY, ...) gets this long to arrive first. */
const LOAD_EXIT_GRACE_MS = 500;
/**
 * A silent worker whose main thread still uses CPU time is computing, not stopped or deadlocked: on an
 * overloaded machine its event loop runs late, and killing it would fail its jobs for nothing. It gets up
 * to 10 s; a stopped, deadlocked or idle-silent one is lost at UNRESPONSIVE_MS. CPU use counts within the window.
 */
const BUSY_SILENT_MS = 10_000;
const CPU_WINDOW_MS = 1000;
const START_TIMEOUT_MS = 30_000;
const PORT_TRIES = 20;

export interface SupervisorOptions {
  hiveId: string;
  stateDir: string;
  token?: string | undefined;
  workerPortStart: number;
  maxQueue: number;
  logger: Logger;
  onCrash?: (w: HiveWorker) => void;
  onSpawn?: (ok: boolean) => void;
  now?: () => number;
}

export class Supervisor {
  private readonly workers = new Map<string, HiveWorker>();
  private readonly ports = new Set<number>();
  private disposed = false;
  private readonly now: () => number;

  constructor(private readonly options: SupervisorOptions) {
    this.now = options.now ?? Date.now;
  }

  list(): HiveWorker[] {
    return [...this.workers.values()];
  }

  get(id: string): HiveWorker | undefined {
    return this.workers.get(id);
  }

  private newId(): string {
    for (;;) {
      const id = `${this.options.hiveId}-w${randomId(8)}`;
      if (!this.workers.has(id)) return id;
    }
  }

  /**
   * Starts a worker and follows its load job under `job` until the model is loaded. The worker is
   * listed (`starting`) at once, before any await, so decisions made meanwhile see it. With
   * `reserve`, one job slot is taken for the caller, so the idle reaper cannot stop it first.
   */
  launch(job: Job, spec: WorkerSpec, reserve = false): { worker: HiveWorker; ready: Promise<HiveWorker> } {
    if (this.disposed) throw new RbeeError("CANCELLED", "The hive is shutting down.");
    const w = new HiveWorker(this.newId(), spec, this.now());
    if (reserve) w.inflight = 1;
    this.workers.set(w.id, w);
    const ready = this.start(job, w).then(
      () => {
        this.options.onSpawn?.(true);
        return w;
      },
      async (err: unknown) => {
        this.options.onSpawn?.(false);
        await this.discard(w);
        throw err;
      },
    );
    return { worker: w, ready };
  }

  private async start(job: Job, w: HiveWorker): Promise<void> {
    const { spec } = w;
    await ensureDir(this.options.stateDir);
    const logFile = path.join(this.options.stateDir, `llm-worker-rbee-${w.id}.log`);
    const bin = binaryCommand("llm-worker-rbee");
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (this.options.token) env["RBEE_TOKEN"] = this.options.token;
    else delete env["RBEE_TOKEN"];
    let started: { proc: WorkerProcess; url: string } | undefined;
    let from = this.options.workerPortStart;
    for (let attempt = 1; !started; attempt++) {
      const port = await findFreePort(from, this.ports);
      this.ports.add(port);
      w.port = port;
      const args = [
        ...bin.args, "--model", spec.modelPath, "--model-id", spec.model, "--worker-id", w.id, "--port", String(port), "--host", "127.0.0.1",
        "--device", spec.device, "--gpu-layers", String(spec.gpuLayers), "--parallel", String(spec.parallel), "--max-queue", String(this.options.maxQueue),
        "--correlation-id", job.correlationId, "--parent-job-id", job.id, "--log-file", logFile,
        ...(spec.contextSize !== undefined ? ["--context-size", String(spec.contextSize)] : []),
      ];
      // Stopped meanwhile (hive shutdown, worker_stop): the child is never started, or killed at once.
      const signal = AbortSignal.any([job.signal, w.gone.signal]);
      try {
        if (signal.aborted) throw signal.reason;
        started = await WorkerProcess.start({ command: bin.command, args, env, logFile, startTimeoutMs: START_TIMEOUT_MS, signal });
      } catch (err) {
        this.ports.delete(port);
        if (signal.aborted) throw signal.reason;
        if (err instanceof PortInUseError && attempt < PORT_TRIES) {
          job.narrate("worker_port", `Port ${port} was taken before worker ${w.id} could bind it; trying the next free port.`, { target: w.id, level: "debug" });
          // Whoever took it is likely taking the ports right after too: skip ahead a little, at random.
          from = Math.min(65535 - 1000, port + 1 + randomInt(4));
          continue;
        }
        throw new RbeeError("INTERNAL", `Worker ${w.id} did not start: ${(err as Error).message}`);
      }
    }
    const { proc, url } = started;
    w.proc = proc;
    if (w.gone.signal.aborted) {
      proc.signal("SIGKILL");
      throw w.gone.signal.reason;
    }
    w.url = url;
    w.pid = proc.pid;
    w.lastAnswer = this.now();
    const client = new JobClient(url, { token: this.options.token, unreachableCode: "WORKER_CRASHED", label: `worker ${w.id}` });
    this.watch(w, client);
    w.listening(client);
    job.narrate("worker_started", `Worker ${w.id} (pid ${w.pid}) listens on ${url}; it loads ${spec.model} on ${spec.device}.`, { target: w.id });
    const info = await client.getJson<WorkerInfo>("/v1/info", job.signal);
    // A finished load job replays to its end, so following it is right whatever state the worker is in.
    if (info.load_job_id) await follow(job, client, info.load_job_id, { abort: w.gone.signal });
    if (w.gone.signal.aborted) throw w.gone.signal.reason;
    w.apply(await client.getJson<WorkerInfo>("/v1/info", job.signal));
    w.phase = "running";
    w.idleSince = w.lastUsed = this.now();
  }

  /** Child exit and a health poll; whichever notices first tells the worker's jobs. */
  private watch(w: HiveWorker, client: JobClient): void {
    void w.proc?.exited.then((exit) => {
      if (w.phase !== "stopping") this.lost(w, `exited (${describeExit(exit)})`);
    });
    let polls = 0;
    let failed = 0;
    let busy = false;
    let told = false;
    const cpu = new CpuWatch(w.pid);
    w.poller = setInterval(() => {
      if (w.phase === "stopping") return;
      const now = this.now();
      cpu.sample(now);
      const silent = now - w.lastAnswer;
      const seconds = Math.round(silent / 100) / 10;
      // A poll must have failed too: a hive whose own event loop stalled has not heard, but nobody was silent.
      if (failed > 0 && silent > UNRESPONSIVE_MS) {
        // Still using CPU time: slow on a loaded machine, not hung (stopped or deadlocked).
        if (silent < BUSY_SILENT_MS && cpu.busy(now, CPU_WINDOW_MS)) {
          if (!told) this.options.logger.warn("worker_slow", `Worker ${w.id} has not answered for ${seconds} s but is computing; waiting for it.`, { target: w.id, pid: w.pid });
          told = true;
        } else {
          this.lost(w, `stopped answering for ${seconds} s`);
          return;
        }
      }
      if (busy) return;
      busy = true;
      // /health for liveness; every fourth poll /v1/info instead, for state, busy slots and last use.
      const timeout = AbortSignal.timeout(POLL_TIMEOUT_MS);
      const poll = polls++ % 4 === 0 ? client.getJson<WorkerInfo>("/v1/info", timeout).then((info) => w.apply(info)) : client.getJson("/health", timeout);
      poll.then(
        () => {
          w.lastAnswer = this.now();
          failed = 0;
          told = false;
        },
        () => void failed++,
      ).finally(() => (busy = false));
    }, POLL_MS);
    w.poller.unref();
  }

  /** A worker died or hung: it leaves the list, its process is killed, and its jobs fail WORKER_CRASHED. */
  private lost(w: HiveWorker, why: string): void {
    if (w.phase === "stopping" || w.gone.signal.aborted || this.workers.get(w.id) !== w) return;
    this.forget(w);
    w.proc?.signal("SIGKILL");
    const err = new RbeeError("WORKER_CRASHED", `Worker ${w.id} (pid ${w.pid}, ${w.model}) ${why}.`);
    if (w.phase === "running") {
      this.options.onCrash?.(w);
      this.options.logger.warn("worker_crashed", `${err.message} Its jobs fail with WORKER_CRASHED.`, { target: w.id, pid: w.pid });
      w.gone.abort(err);
    } else {
      setTimeout(() => w.gone.abort(err), LOAD_EXIT_GRACE_MS).unref();
    }
  }

  private forget(w: HiveWorker): void {
    if (w.poller) clearInterval(w.poller);
    if (this.workers.get(w.id) === w) this.workers.delete(w.id);
    this.ports.delete(w.port);
  }

  /** Takes a job slot on `w`; a job's keep_alive replaces the worker's. */
  acquire(w: HiveWorker, keepAlive?: number): void {
    w.inflight++;
    if (keepAlive !== undefined) w.keepAlive = keepAlive;
    w.lastUsed = this.now();
  }

  release(w: HiveWorker): void {
    w.inflight = Math.max(0, w.inflight - 1);
    // The last poll predates this job's end; trust our own count until the next one.
    w.polledBusy = Math.min(w.polledBusy, w.inflight);
    if (w.polledState === "busy") w.polledState = undefined;
    w.lastUsed = this.now();
    if (w.inflight === 0) w.idleSince = w.lastUsed;
  }

  /** Stops a worker: `POST /v1/shutdown`, then SIGTERM, then SIGKILL; resolves once it has exited. */
  async stop(id: string, why: string): Promise<boolean> {
    const w = this.workers.get(id);
    if (!w) return false;
    if (w.phase === "stopping") {
      await w.proc?.exited;
      return true;
    }
    w.phase = "stopping";
    if (w.poller) clearInterval(w.poller);
    this.options.logger.info("worker_stop", `Stopping worker ${w.id} (${w.model}, pid ${w.pid}): ${why}.`, { target: w.id });
    await w.proc?.stop(() => (w.client ? w.client.postJson("/v1/shutdown", {}, AbortSignal.timeout(1000)) : Promise.resolve()));
    this.forget(w);
    w.gone.abort(new CancelledError(`Worker ${w.id} was stopped (${why}).`));
    return true;
  }

  /** A worker whose start failed: stopped quietly and forgotten. */
  private async discard(w: HiveWorker): Promise<void> {
    if (this.workers.get(w.id) === w) await this.stop(w.id, "its start failed");
    else w.proc?.signal("SIGKILL");
  }

  /** Stops every worker (hive shutdown); no child outlives the hive. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all(this.list().map((w) => this.stop(w.id, "the hive is shutting down")));
  }
}
