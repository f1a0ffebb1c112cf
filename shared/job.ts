import { CancelledError, RbeeError, type ErrorCode } from "./errors.js";
import type {
  EndData, EventDataMap, EventPayload, EventType, FinishReason, JobEvent, JobStatus, JobSummary, Level, Timing, Usage,
} from "./protocol.js";
import { encodeEvent } from "./sse.js";

/** An event as stored by a job: the event and its SSE frame, encoded once for every subscriber. */
export interface StoredEvent {
  event: JobEvent;
  frame: string;
}
export type Listener = (stored: StoredEvent) => void;

/** What a finished handler may add to its `end` event. */
export interface EndExtras {
  finish_reason?: FinishReason;
  usage?: Usage;
}

export interface JobInit {
  id: string;
  operation: string;
  correlationId: string;
  parentJobId?: string;
  actor: string;
  node?: string | null;
  now?: () => number;
  onEvent?: (job: Job, stored: StoredEvent) => void;
  onEnd?: (job: Job) => void;
}

/** The default clock: wall-clock milliseconds with sub-millisecond resolution, so fast tokens still time apart. */
export const clock = (): number => performance.timeOrigin + performance.now();

export interface NarrateOptions {
  target?: string | null;
  level?: Level;
  node?: string | null;
}

/**
 * One job: its events in order (kept for replay), its subscribers, its status and its cancel
 * signal. Handlers get this handle; `end` happens exactly once, whoever calls it first.
 */
export class Job {
  readonly id: string;
  readonly operation: string;
  readonly correlationId: string;
  readonly parentJobId: string | undefined;
  readonly actor: string;
  node: string | null;
  readonly createdAt: number;
  status: JobStatus = "queued";
  finishedAt: number | undefined;
  readonly events: StoredEvent[] = [];
  bytes = 0;
  firstTokenAt: number | undefined;
  lastTokenAt: number | undefined;
  tokenCount = 0;
  private tokenIndex = 0;
  private readonly controller = new AbortController();
  private readonly listeners = new Set<Listener>();
  private readonly now: () => number;
  private readonly onEvent: JobInit["onEvent"];
  private readonly onEnd: JobInit["onEnd"];

  constructor(init: JobInit) {
    this.id = init.id;
    this.operation = init.operation;
    this.correlationId = init.correlationId;
    this.parentJobId = init.parentJobId;
    this.actor = init.actor;
    this.node = init.node ?? null;
    this.now = init.now ?? clock;
    this.createdAt = this.now();
    this.onEvent = init.onEvent;
    this.onEnd = init.onEnd;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get finished(): boolean {
    return this.finishedAt !== undefined;
  }
  get lastEventId(): number {
    return this.events.length;
  }

  markRunning(): void {
    if (!this.finished) this.status = "running";
  }
  markQueued(): void {
    if (!this.finished) this.status = "queued";
  }

  /** Requests cancellation; the handler sees `signal.reason` (a CancelledError) and unwinds. */
  cancel(message?: string): boolean {
    if (this.finished || this.signal.aborted) return false;
    this.controller.abort(new CancelledError(message));
    return true;
  }

  private push<E extends EventType>(type: E, data: EventDataMap[E]): void {
    if (this.finished) return;
    this.append(type, data);
  }

  private append<E extends EventType>(type: E, data: EventDataMap[E]): void {
    const event = { id: this.events.length + 1, event: type, data } as JobEvent;
    const stored: StoredEvent = { event, frame: encodeEvent(event) };
    this.events.push(stored);
    this.bytes += stored.frame.length;
    if (type === "token") {
      const t = this.now();
      this.firstTokenAt ??= t;
      this.lastTokenAt = t;
      this.tokenCount++;
    }
    this.onEvent?.(this, stored);
    // A snapshot, so a listener added during delivery (it already got this event by replay) is not called twice.
    for (const listener of [...this.listeners]) {
      if (!this.listeners.has(listener)) continue;
      try {
        listener(stored);
      } catch {
        // one broken subscriber must not cost the others their events
      }
    }
  }

  private own<E extends Exclude<EventType, "end">>(type: E, payload: EventPayload<E>): void {
    this.push(type, { job_id: this.id, correlation_id: this.correlationId, path: [this.id], ...payload } as EventDataMap[E]);
  }

  narrate(action: string, human: string, opts: NarrateOptions = {}): void {
    this.own("narration", {
      actor: this.actor,
      node: opts.node !== undefined ? opts.node : this.node,
      action,
      target: opts.target ?? null,
      human,
      level: opts.level ?? "info",
      ts: new Date(this.now()).toISOString(),
    });
  }

  progress(action: string, target: string | null, done: number, total: number | null, unit: string): void {
    this.own("progress", { action, target, done, total, unit });
  }

  token(text: string): void {
    this.own("token", { text, index: this.tokenIndex++ });
  }

  data(action: string, payload: unknown): void {
    this.own("data", { action, payload });
  }

  /** Re-emits a downstream job's event on this job's stream, this job's id put in front of its path. */
  relay(event: JobEvent): void {
    if (event.event === "end") return;
    this.push(event.event, { ...event.data, path: [this.id, ...event.data.path] } as never);
  }

  /** This job's own timing, from its creation: time to first token, total, and decode speed. */
  timing(end = this.finishedAt ?? this.now()): Timing {
    const first = this.firstTokenAt;
    const last = this.lastTokenAt ?? first;
    const ttft = first === undefined ? end - this.createdAt : first - this.createdAt;
    let tps = 0;
    if (first !== undefined && last !== undefined) {
      // Rate between first and last token; with one token (or one instant) fall back to first token -> end.
      if (this.tokenCount > 1 && last > first) tps = ((this.tokenCount - 1) * 1000) / (last - first);
      else if (end > first) tps = (this.tokenCount * 1000) / (end - first);
    }
    return { ttft_ms: round(Math.max(0, ttft)), total_ms: round(Math.max(0, end - this.createdAt)), tokens_per_s: round(tps) };
  }

  /** Ends the job exactly once; later calls return false and change nothing. */
  end(status: "completed" | "failed" | "cancelled", extras: EndExtras & { error?: RbeeError } = {}): boolean {
    if (this.finished) return false;
    const data: EndData = { job_id: this.id, correlation_id: this.correlationId, path: [this.id], status };
    if (status === "failed") data.error = (extras.error ?? new RbeeError("INTERNAL", "The job failed.")).toJSON();
    if (status === "cancelled") data.error = { code: "CANCELLED", message: extras.error?.message ?? "The job was cancelled." };
    if (extras.finish_reason !== undefined && status === "completed") data.finish_reason = extras.finish_reason;
    if (extras.usage !== undefined) data.usage = extras.usage;
    const endAt = this.now();
    if (this.operation === "infer") data.timing = this.timing(endAt);
    // Finished before `end` is delivered: whoever reacts to it sees the final status, and nothing can follow it.
    this.finishedAt = endAt;
    this.status = status;
    this.append("end", data);
    this.controller.abort(new CancelledError("The job has ended."));
    this.listeners.clear();
    this.onEnd?.(this);
    return true;
  }

  fail(code: ErrorCode, message: string): boolean {
    return this.end("failed", { error: new RbeeError(code, message) });
  }

  /**
   * Replays every event after `afterId`, then delivers live ones until `end`. Returns the
   * unsubscribe function. A finished job replays and returns at once.
   */
  subscribe(afterId: number, listener: Listener): () => void {
    const from = Number.isInteger(afterId) && afterId > 0 ? afterId : 0;
    for (let i = from; i < this.events.length; i++) listener(this.events[i] as StoredEvent);
    if (this.finished) return () => {};
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Async iteration over the job's events (replay included), ending after `end`. */
  async *stream(afterId = 0, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const queue: JobEvent[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.subscribe(afterId, (s) => {
      queue.push(s.event);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        while (queue.length > 0) {
          const e = queue.shift() as JobEvent;
          yield e;
          if (e.event === "end") return;
        }
        if (signal?.aborted) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      unsubscribe();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  summary(): JobSummary {
    return {
      job_id: this.id,
      operation: this.operation,
      status: this.status,
      correlation_id: this.correlationId,
      parent_job_id: this.parentJobId ?? null,
      created_at: new Date(this.createdAt).toISOString(),
      finished_at: this.finishedAt === undefined ? null : new Date(this.finishedAt).toISOString(),
    };
  }
}

const round = (n: number): number => Math.round(n * 100) / 100;
