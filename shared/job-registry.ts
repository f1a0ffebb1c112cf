import { CancelledError, RbeeError, toRbeeError } from "./errors.js";
import { newJobId } from "./ids.js";
import { Job, clock, type EndExtras, type StoredEvent } from "./job.js";
import type { JobSummary } from "./protocol.js";

export interface RegistryOptions {
  actor: string;
  node?: string | null;
  /** Seconds a finished job stays readable (contract default 600). */
  jobTtlSeconds?: number;
  /** Finished jobs kept at most (contract default 1000). */
  maxFinishedJobs?: number;
  /** Bytes of stored events kept across finished jobs. */
  maxFinishedBytes?: number;
  /** How long a cancelled handler may take to unwind before the job is ended for it. */
  cancelGraceMs?: number;
  now?: () => number;
  onEvent?: (job: Job, stored: StoredEvent) => void;
  onEnd?: (job: Job) => void;
}

export type Handler = (job: Job) => Promise<EndExtras | void>;

/**
 * Every job of one daemon. Running jobs are never collected; finished ones are dropped past
 * their TTL, past the count limit, or past the byte budget, oldest first, so memory stays bounded.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, Job>();
  private readonly finished = new Map<string, Job>();
  private finishedBytes = 0;
  private readonly ttlMs: number;
  private readonly maxFinished: number;
  private readonly maxBytes: number;
  private readonly cancelGraceMs: number;
  private readonly sweeper: NodeJS.Timeout;
  readonly options: RegistryOptions;

  constructor(options: RegistryOptions) {
    this.options = options;
    this.ttlMs = (options.jobTtlSeconds ?? 600) * 1000;
    this.maxFinished = options.maxFinishedJobs ?? 1000;
    this.maxBytes = options.maxFinishedBytes ?? 64 * 1024 * 1024;
    this.cancelGraceMs = options.cancelGraceMs ?? 5000;
    // At least 1 s apart: a TTL of 0 must not turn the sweeper into a busy loop.
    this.sweeper = setInterval(() => this.collect(), Math.max(1000, Math.min(this.ttlMs, 30_000)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.jobs.size;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  create(init: { operation: string; correlationId: string; parentJobId?: string; node?: string | null }): Job {
    const job = new Job({
      id: newJobId(),
      operation: init.operation,
      correlationId: init.correlationId,
      ...(init.parentJobId !== undefined ? { parentJobId: init.parentJobId } : {}),
      actor: this.options.actor,
      node: init.node !== undefined ? init.node : (this.options.node ?? null),
      ...(this.options.now ? { now: this.options.now } : {}),
      ...(this.options.onEvent ? { onEvent: this.options.onEvent } : {}),
      onEnd: (j) => this.finish(j),
    });
    this.jobs.set(job.id, job);
    return job;
  }

  /**
   * Runs a handler for a job and ends the job from its outcome; never throws. After a cancel the
   * handler has `cancelGraceMs` to unwind; then the job ends `cancelled` without waiting for it.
   */
  run(job: Job, handler: Handler): Promise<void> {
    let grace: NodeJS.Timeout | undefined;
    const onAbort = () => {
      grace = setTimeout(() => job.end("cancelled", { error: cancelReason(job) }), this.cancelGraceMs);
      grace.unref();
    };
    if (job.signal.aborted) onAbort();
    else job.signal.addEventListener("abort", onAbort, { once: true });
    job.markRunning();
    return (async () => handler(job))().then(
      (extras) => {
        if (job.signal.aborted) job.end("cancelled", { error: cancelReason(job) });
        else job.end("completed", extras ?? {});
      },
      (err: unknown) => {
        // Once cancelled, whatever the handler throws while unwinding (an AbortError, a closed socket) is the cancel.
        if (err instanceof CancelledError || (err instanceof RbeeError && err.code === "CANCELLED")) {
          job.end("cancelled", { error: err });
        } else if (job.signal.aborted) {
          job.end("cancelled", { error: cancelReason(job) });
        } else {
          job.end("failed", { error: toRbeeError(err) });
        }
      },
    ).finally(() => {
      if (grace) clearTimeout(grace);
      job.signal.removeEventListener("abort", onAbort);
    });
  }

  /** Newest first. */
  list(): JobSummary[] {
    return [...this.jobs.values()].reverse().map((j) => j.summary());
  }

  running(): Job[] {
    return [...this.jobs.values()].filter((j) => !j.finished);
  }

  private finish(job: Job): void {
    this.finished.set(job.id, job);
    this.finishedBytes += job.bytes;
    this.options.onEnd?.(job);
    this.collect();
  }

  /** Resolves once every job running now has ended, or after `timeoutMs`; true when all ended. */
  settle(timeoutMs: number): Promise<boolean> {
    const running = this.running();
    if (running.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let left = running.length;
      const unsubscribes: (() => void)[] = [];
      const timer = setTimeout(() => {
        for (const u of unsubscribes) u();
        resolve(false);
      }, timeoutMs);
      for (const job of running) {
        unsubscribes.push(job.subscribe(job.lastEventId, (stored) => {
          if (stored.event.event === "end" && --left === 0) {
            clearTimeout(timer);
            resolve(true);
          }
        }));
      }
    });
  }

  /** Drops finished jobs past the TTL, the count limit or the byte budget, oldest first. */
  collect(): void {
    const now = (this.options.now ?? clock)();
    for (const job of this.finished.values()) {
      const expired = now - (job.finishedAt ?? now) >= this.ttlMs;
      if (!expired && this.finished.size <= this.maxFinished && this.finishedBytes <= this.maxBytes) break;
      this.finished.delete(job.id);
      this.jobs.delete(job.id);
      this.finishedBytes -= job.bytes;
    }
  }

  /** Cancels every running job (daemon shutdown). */
  cancelAll(message = "The daemon is shutting down."): void {
    for (const job of this.running()) job.cancel(message);
  }

  dispose(): void {
    clearInterval(this.sweeper);
  }
}

const cancelReason = (job: Job): CancelledError =>
  job.signal.reason instanceof CancelledError ? job.signal.reason : new CancelledError();
