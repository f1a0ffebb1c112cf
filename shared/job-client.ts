import type { Dispatcher } from "undici";
import { CancelledError, RbeeError, isErrorCode, type ErrorCode } from "./errors.js";
import type { EndExtras, Job } from "./job.js";
import { compactOperation, type CreateJobResponse, type EndData, type JobEvent, type JobSummary } from "./protocol.js";
import { parseEventStream } from "./sse.js";
import { Agent, request } from "./undici-lite.js";

/** One keep-alive pool for every daemon-to-daemon call; a silent stream (no ping in 60 s) is dead. */
export const sharedAgent = new Agent({ keepAliveTimeout: 30_000, bodyTimeout: 60_000, headersTimeout: 30_000, connect: { timeout: 5_000 } });

export interface JobClientOptions {
  token?: string | undefined;
  /** The code a connection failure turns into (HIVE_UNREACHABLE toward a hive, WORKER_CRASHED toward a worker). */
  unreachableCode?: ErrorCode;
  /** How the other side is named in messages ("hive localhost"). */
  label?: string;
  dispatcher?: Dispatcher;
}

export interface CreateOptions {
  correlationId?: string;
  parentJobId?: string;
  signal?: AbortSignal;
}

export interface CreatedJob extends CreateJobResponse {
  correlation_id: string;
}

export interface StreamOptions {
  afterId?: number;
  signal?: AbortSignal;
  /** Reconnect attempts (with Last-Event-ID) after a dropped connection before giving up. */
  reconnects?: number;
  /** Sent as X-Correlation-ID, so the other daemon's logs of this request carry the job's id. */
  correlationId?: string;
}

const errorMessage = (err: unknown): string => {
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(err);
};

/** A connection refused somewhere in the error's causes: no process listens on that port. */
export function isConnectionRefused(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === "ECONNREFUSED") return true;
  }
  return false;
}

/** A client for one daemon's job API, on undici. */
export class JobClient {
  readonly baseUrl: string;
  private readonly unreachable: ErrorCode;
  private readonly label: string;
  private readonly dispatcher: Dispatcher;

  constructor(baseUrl: string, private readonly options: JobClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.unreachable = options.unreachableCode ?? "HIVE_UNREACHABLE";
    this.label = options.label ?? this.baseUrl;
    this.dispatcher = options.dispatcher ?? sharedAgent;
  }

  private headers(extra: Record<string, string | undefined> = {}): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.options.token) h["authorization"] = `Bearer ${this.options.token}`;
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) h[k] = v;
    return h;
  }

  private async send(method: Dispatcher.HttpMethod, path: string, init: { body?: string; headers?: Record<string, string | undefined>; signal?: AbortSignal | undefined } = {}): Promise<Dispatcher.ResponseData> {
    try {
      return await request(`${this.baseUrl}${path}`, {
        method,
        headers: this.headers({ ...(init.body !== undefined ? { "content-type": "application/json" } : {}), ...init.headers }),
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
        dispatcher: this.dispatcher,
      });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      throw new RbeeError(this.unreachable, `Could not reach ${this.label} at ${this.baseUrl}: ${errorMessage(err)}.`, { cause: err });
    }
  }

  /** Turns a non-2xx answer into the RbeeError its body names. */
  private async fail(res: Dispatcher.ResponseData): Promise<never> {
    const text = await res.body.text().catch(() => "");
    let code: ErrorCode = res.statusCode === 401 ? "UNAUTHORIZED" : res.statusCode === 404 ? "NOT_FOUND" : "INTERNAL";
    let message = `${this.label} answered HTTP ${res.statusCode}.`;
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (isErrorCode(body.error?.code)) code = body.error.code;
      if (typeof body.error?.message === "string") message = body.error.message;
    } catch {
      // not a JSON error body; keep the status line
    }
    throw new RbeeError(code, message);
  }

  async getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
    const res = await this.send("GET", path, { signal });
    if (res.statusCode >= 300) return this.fail(res);
    return (await res.body.json()) as T;
  }

  async postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.send("POST", path, { body: JSON.stringify(body), signal });
    if (res.statusCode >= 300) return this.fail(res);
    return (await res.body.json()) as T;
  }

  async create(op: object, opts: CreateOptions = {}): Promise<CreatedJob> {
    const res = await this.send("POST", "/v1/jobs", {
      body: JSON.stringify(op),
      headers: { "x-correlation-id": opts.correlationId, "x-parent-job-id": opts.parentJobId },
      signal: opts.signal,
    });
    if (res.statusCode !== 201) return this.fail(res);
    const body = (await res.body.json()) as CreateJobResponse;
    const corr = res.headers["x-correlation-id"];
    return { ...body, correlation_id: typeof corr === "string" ? corr : (opts.correlationId ?? "") };
  }

  async cancel(jobId: string, opts: { correlationId?: string } = {}): Promise<void> {
    const res = await this.send("DELETE", `/v1/jobs/${encodeURIComponent(jobId)}`, { headers: { "x-correlation-id": opts.correlationId } });
    if (res.statusCode !== 202 && res.statusCode !== 409) return this.fail(res);
    await res.body.dump();
  }

  async list(): Promise<JobSummary[]> {
    return (await this.getJson<{ jobs: JobSummary[] }>("/v1/jobs")).jobs;
  }

  /**
   * A job's events from `afterId` on, until `end`. A dropped connection is resumed with
   * Last-Event-ID, so no event is lost or repeated. Reconnects back off (0.2 s doubling) and stop
   * after `reconnects` tries in a row without a new event: then `unreachableCode`.
   */
  async *stream(jobId: string, opts: StreamOptions = {}): AsyncGenerator<JobEvent> {
    let last = opts.afterId ?? 0;
    let failures = 0;
    const maxReconnects = opts.reconnects ?? 5;
    const path = `/v1/jobs/${encodeURIComponent(jobId)}/stream`;
    for (;;) {
      let res: Dispatcher.ResponseData;
      try {
        const headers = { "x-correlation-id": opts.correlationId, ...(last > 0 ? { "last-event-id": String(last) } : {}) };
        res = await this.send("GET", path, { headers, signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted || !(err instanceof RbeeError) || err.code !== this.unreachable || ++failures > maxReconnects) throw err;
        // Nothing listens there any more: the daemon is gone and its jobs with it (a restarted one would not know them).
        if (isConnectionRefused(err)) throw new RbeeError(this.unreachable, `Lost the event stream of ${jobId}: ${err.message.replace(/\.$/, "")} (the daemon is gone).`, { cause: err });
        await sleep(100 * 2 ** failures, opts.signal);
        continue;
      }
      if (res.statusCode !== 200) return this.fail(res);
      let why = "the connection closed before the job's end event";
      try {
        for await (const event of parseEventStream(res.body)) {
          // Ids only grow; anything at or below the last one seen was already delivered.
          if (Number.isInteger(event.id) && event.id <= last) continue;
          if (Number.isInteger(event.id)) last = event.id;
          failures = 0;
          yield event;
          if (event.event === "end") return;
        }
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        why = errorMessage(err);
      } finally {
        res.body.destroy();
      }
      if (opts.signal?.aborted) throw opts.signal.reason;
      // A stream that ends without `end` counts as a failure too, so a daemon that keeps hanging up is given up on.
      if (++failures > maxReconnects) throw new RbeeError(this.unreachable, `Lost the event stream of ${jobId} at ${this.label}: ${why}.`);
      await sleep(100 * 2 ** failures, opts.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface ForwardOptions {
  /** Called with the downstream job id once it exists (for cancel bookkeeping, narration). */
  onCreated?: (downstreamJobId: string) => void;
  /** Called on every downstream event before it is relayed (token counting, state). */
  onEvent?: (event: JobEvent) => void;
  /** How long to wait for the downstream `cancelled` end after sending DELETE. */
  cancelWaitMs?: number;
  /** Stops following at once with this signal's reason (a supervisor that saw the other side die). */
  abort?: AbortSignal;
}

/**
 * Runs `op` as a downstream job and re-emits its events on `job` with the path prefixed. The
 * downstream `end` is folded: failed -> throws its code, cancelled -> CancelledError, completed
 * -> returns finish_reason and usage. Cancelling `job` sends DELETE downstream.
 */
export async function forward(job: Job, client: JobClient, op: object, opts: ForwardOptions = {}): Promise<EndExtras> {
  if (job.signal.aborted) throw job.signal.reason;
  // No abort signal here: a POST aborted mid-flight could leave a downstream job nobody cancels; `follow`
  // sends DELETE at once when the job was cancelled meanwhile (creation is quick, and bounded by headersTimeout).
  const created = await client.create(compactOperation(op), { correlationId: job.correlationId, parentJobId: job.id });
  opts.onCreated?.(created.job_id);
  return follow(job, client, created.job_id, opts);
}

/** Follows an existing downstream job (for example a worker's model-load job) the way `forward` does. */
export async function follow(job: Job, client: JobClient, downstreamJobId: string, opts: ForwardOptions = {}): Promise<EndExtras> {
  const reader = new AbortController();
  let giveUp: NodeJS.Timeout | undefined;
  const onCancel = () => {
    client.cancel(downstreamJobId, { correlationId: job.correlationId }).catch(() => {});
    giveUp = setTimeout(() => reader.abort(job.signal.reason), opts.cancelWaitMs ?? 3000);
    giveUp.unref();
  };
  const onAbort = () => reader.abort(opts.abort?.reason);
  if (job.signal.aborted) onCancel();
  else job.signal.addEventListener("abort", onCancel, { once: true });
  if (opts.abort?.aborted) onAbort();
  else opts.abort?.addEventListener("abort", onAbort, { once: true });
  let end: EndData | undefined;
  try {
    for await (const event of client.stream(downstreamJobId, { signal: reader.signal, correlationId: job.correlationId })) {
      opts.onEvent?.(event);
      if (event.event === "end") {
        end = event.data;
        break;
      }
      job.relay(event);
    }
  } catch (err) {
    if (opts.abort?.aborted) throw opts.abort.reason;
    if (reader.signal.aborted) throw job.signal.reason;
    throw err;
  } finally {
    if (giveUp) clearTimeout(giveUp);
    job.signal.removeEventListener("abort", onCancel);
    opts.abort?.removeEventListener("abort", onAbort);
  }
  if (!end) throw new RbeeError("INTERNAL", `The stream of ${downstreamJobId} closed without an end event.`);
  if (end.status === "cancelled") throw job.signal.aborted ? job.signal.reason : new CancelledError(end.error?.message ?? "The downstream job was cancelled.");
  if (end.status === "failed") {
    const code = end.error && isErrorCode(end.error.code) ? end.error.code : "INTERNAL";
    throw new RbeeError(code, end.error?.message ?? "The downstream job failed.");
  }
  const extras: EndExtras = {};
  if (end.finish_reason) extras.finish_reason = end.finish_reason;
  if (end.usage) extras.usage = end.usage;
  return extras;
}
