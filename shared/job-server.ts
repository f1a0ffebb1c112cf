import { createHash, timingSafeEqual } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import Router from "@koa/router";
import Koa from "koa";
import { CancelledError, RbeeError, errorBody, toRbeeError } from "./errors.js";
import { newCorrelationId } from "./ids.js";
import type { EndExtras, Job } from "./job.js";
import { JobRegistry, type RegistryOptions } from "./job-registry.js";
import { Logger } from "./log.js";
import { DaemonMetrics } from "./metrics.js";
import { parseOperation, type OperationName, type OperationOf } from "./protocol.js";
import { PING_FRAME } from "./sse.js";

export const MAX_BODY_BYTES = 1024 * 1024;
/**
 * A job one tier creates for its own job (it sends X-Parent-Job-ID) carries a body that fit MAX_BODY_BYTES at
 * the first tier, left without its defaults, plus the pins that tier adds (hive_id, worker_id): it may be these
 * few bytes longer and must not fail downstream for it.
 */
const FORWARDED_HEADROOM_BYTES = 4096;
/**
 * How long a stream may hold frames to send several in one write. A write and the read it causes at the next hop
 * cost about 60 us each on loopback, per hop; at rbee-tiny's ~1,000 tokens/s, 10 ms (about 10 tokens a write)
 * cut the hive's and queen's CPU per token by about 40% against 3 ms and took the queen path from 0.84x to 1.00x
 * of in-process decode (bench/, back to back). A model slower than 100 tokens/s is never held, and neither is a
 * stream's first token.
 */
const COALESCE_MS = 10;
const CORRELATION_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export type OperationHandlers<N extends OperationName> = {
  [K in N]: (op: OperationOf<K>, job: Job) => Promise<EndExtras | void>;
};

export interface JobServerOptions<N extends OperationName> {
  service: "queen-rbee" | "rbee-hive" | "llm-worker-rbee";
  version: string;
  node?: string | null;
  operations: OperationHandlers<N>;
  /** Checks that need daemon state, run at POST before the job exists (throw a 400 RbeeError). */
  validate?: (op: OperationOf<N>) => void | Promise<void>;
  info: () => unknown;
  token?: string | undefined;
  registry?: Omit<RegistryOptions, "actor" | "node" | "onEvent" | "onEnd">;
  pingIntervalMs?: number;
  logger?: Logger;
  /** An error shape for some paths (the OpenAI routes), also for errors raised before routing (401). */
  errorFormat?: (path: string) => ((err: RbeeError) => unknown) | undefined;
  /** Extra routes (heartbeats, OpenAI API, shutdown) mounted before the job routes. */
  routes?: (router: Router, server: JobServer<N>) => void;
}

export type RbeeContext = Koa.ParameterizedContext<Koa.DefaultState & { formatError?: (err: RbeeError) => unknown }>;

/**
 * Reads the raw body whatever its Content-Type, refusing more than `limit` bytes with 413. Past
 * the limit the rest is read and dropped (as Node does after any early answer), never by
 * destroying the request: that would take the socket, and the 413 with it.
 */
export function readBody(ctx: Koa.Context, limit = MAX_BODY_BYTES): Promise<string> {
  const tooLarge = (): RbeeError => new RbeeError("PAYLOAD_TOO_LARGE", `The request body is over ${MAX_BODY_BYTES} bytes (1 MiB); send less.`);
  const declared = Number(ctx.get("content-length") || 0);
  if (declared > limit) return Promise.reject(tooLarge());
  const req = ctx.req;
  if (req.readableEnded) return Promise.resolve("");
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      stop();
      req.resume();
      reject(tooLarge());
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    const onClose = (): void => onError(new Error("The client closed the connection before sending the whole body."));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    req.once("close", onClose);
  });
}

export async function readJson(ctx: Koa.Context, limit = MAX_BODY_BYTES): Promise<unknown> {
  const text = await readBody(ctx, limit);
  try {
    return JSON.parse(text);
  } catch {
    throw new RbeeError("INVALID_JSON", "The request body is not valid JSON.");
  }
}

/** Starts a `text/event-stream` response and returns the stream its frames are written to (Koa pipes it). */
export function openEventStream(ctx: Koa.Context): PassThrough {
  const out = new PassThrough();
  ctx.req.socket.setNoDelay(true);
  ctx.status = 200;
  // Exactly the SSE media type (UTF-8 is implied by the format); Koa keeps a type set before the body.
  ctx.set("Content-Type", "text/event-stream");
  ctx.set("Cache-Control", "no-cache, no-transform");
  ctx.set("X-Accel-Buffering", "no");
  ctx.body = out;
  return out;
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Compares a bearer token in constant time (hashing first so lengths never leak). */
export function checkBearer(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/i.exec(header ?? "");
  return timingSafeEqual(digest(match?.[1] ?? ""), digest(token)) && match !== null;
}

/**
 * The job API every daemon serves (CONTRACT.md section 2): a daemon hands it the operations it
 * handles; creation, replay, resume, cancel, listing and collection live here once.
 */
export class JobServer<N extends OperationName = OperationName> {
  readonly app = new Koa();
  readonly router = new Router();
  readonly registry: JobRegistry;
  readonly metrics: DaemonMetrics;
  readonly logger: Logger;
  readonly accepted: N[];
  server: Server | undefined;
  url = "";
  /** Told whenever a job of this daemon ends (after its `end` event). */
  readonly jobEndListeners = new Set<(job: Job) => void>();
  /** Set by runDaemon: stops the whole daemon (POST /v1/shutdown, fatal errors). */
  requestStop: (why: string) => void = () => {};
  private readonly pingMs: number;
  private inflight = 0;
  /** Open event streams and how to close each (unsubscribe, stop pings, end the response). */
  private readonly streams = new Map<PassThrough, () => void>();

  constructor(readonly options: JobServerOptions<N>) {
    this.accepted = Object.keys(options.operations) as N[];
    this.metrics = new DaemonMetrics(options.service);
    this.logger = options.logger ?? new Logger(options.service, options.node ?? null);
    this.registry = new JobRegistry({
      ...options.registry,
      actor: options.service,
      node: options.node ?? null,
      onEvent: this.logger.onJobEvent,
      onEnd: (job) => {
        this.metrics.onJobEnd(job);
        for (const listener of this.jobEndListeners) listener(job);
      },
    });
    // Well inside the contract's "at least every 15 s", so jitter never makes a client wait longer.
    this.pingMs = options.pingIntervalMs ?? 10_000;
    this.app.proxy = false;
    this.app.silent = true;
    this.app.use(this.track);
    this.app.use(this.errors);
    this.app.use(this.auth);
    this.mountRoutes();
    this.app.use(this.router.routes());
    this.app.use(this.router.allowedMethods());
    this.app.use((ctx) => {
      throw new RbeeError("NOT_FOUND", `No route for ${ctx.method} ${ctx.path}.`);
    });
  }

  /** Counts requests whose response is not done yet, so close() can drop every other connection at once. */
  private track = async (ctx: RbeeContext, next: Koa.Next): Promise<void> => {
    this.inflight++;
    ctx.res.once("close", () => this.inflight--);
    await next();
  };

  private errors = async (ctx: RbeeContext, next: Koa.Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      const e = toRbeeError(err);
      if (e.code === "INTERNAL") this.logger.error("http_error", `${ctx.method} ${ctx.path} failed: ${e.message}`);
      ctx.status = e.status;
      const format = ctx.state.formatError ?? this.options.errorFormat?.(ctx.path);
      ctx.body = format ? format(e) : errorBody(e);
    }
  };

  private auth = async (ctx: RbeeContext, next: Koa.Next): Promise<void> => {
    const token = this.options.token;
    if (token && !(ctx.method === "GET" && ctx.path === "/health") && !checkBearer(ctx.get("authorization"), token)) {
      throw new RbeeError("UNAUTHORIZED", "This daemon needs a token: send Authorization: Bearer <token> (see RBEE_TOKEN).");
    }
    await next();
  };

  private mountRoutes(): void {
    const r = this.router;
    const o = this.options;
    r.get("/health", (ctx) => {
      ctx.body = { status: "ok", service: o.service, version: o.version };
    });
    r.get("/v1/info", async (ctx) => {
      ctx.body = await o.info();
    });
    r.get("/metrics", async (ctx) => {
      ctx.type = this.metrics.registry.contentType;
      ctx.body = await this.metrics.registry.metrics();
    });
    o.routes?.(r, this);
    r.post("/v1/jobs", async (ctx) => {
      const parent = ctx.get("x-parent-job-id");
      const op = parseOperation(await readJson(ctx, MAX_BODY_BYTES + (parent ? FORWARDED_HEADROOM_BYTES : 0)), this.accepted);
      await o.validate?.(op);
      const job = this.createJob(op, ctx.get("x-correlation-id"), CORRELATION_PATTERN.test(parent) ? parent : undefined);
      ctx.status = 201;
      ctx.set("X-Correlation-ID", job.correlationId);
      ctx.body = { job_id: job.id, sse_url: `/v1/jobs/${job.id}/stream` };
    });
    r.get("/v1/jobs", (ctx) => {
      ctx.body = { jobs: this.registry.list() };
    });
    r.get("/v1/jobs/:id/stream", (ctx) => {
      const job = this.mustGet(ctx.params["id"] ?? "");
      const header = ctx.get("last-event-id");
      const query = ctx.query["last_event_id"];
      const after = Number(header || (typeof query === "string" ? query : "") || 0);
      this.streamTo(ctx, job, Number.isInteger(after) && after > 0 ? after : 0);
    });
    r.delete("/v1/jobs/:id", (ctx) => {
      const job = this.mustGet(ctx.params["id"] ?? "");
      if (job.finished) throw new RbeeError("JOB_FINISHED", `Job ${job.id} has already ended (${job.status}).`);
      job.cancel("The job was cancelled by a DELETE request.");
      ctx.status = 202;
      ctx.body = { job_id: job.id, status: "cancelling" };
    });
  }

  /** Creates a job for a validated operation and starts its handler; used by POST and by in-process callers. */
  createJob<K extends N>(op: OperationOf<K>, correlationId?: string, parentJobId?: string): Job {
    const corr = correlationId && CORRELATION_PATTERN.test(correlationId) ? correlationId : newCorrelationId();
    const job = this.registry.create({
      operation: op.operation,
      correlationId: corr,
      ...(parentJobId ? { parentJobId } : {}),
    });
    const handler = this.options.operations[op.operation as K];
    void this.registry.run(job, (j) => handler(op, j));
    return job;
  }

  private mustGet(id: string): Job {
    const job = this.registry.get(id);
    if (!job) throw new RbeeError("JOB_NOT_FOUND", `No job ${id.slice(0, 80)} here; it may have been collected.`);
    return job;
  }

  /** Event streams being served now (a closed or aborted one leaves at once). */
  get openStreams(): number {
    return this.streams.size;
  }

  private streamTo(ctx: Koa.Context, job: Job, afterId: number): void {
    ctx.set("X-Correlation-ID", job.correlationId);
    const out = openEventStream(ctx);
    let unsubscribe = (): void => {};
    let open = true;
    const write = (text: string): void => {
      if (open && !out.writableEnded && !out.destroyed) out.write(text);
    };
    // Frames arriving within COALESCE_MS of the last write go out together: at hundreds of tokens a
    // second that is one write (and one read at the next hop) for several tokens; a lone event goes at once.
    let pending = "";
    let timer: NodeJS.Timeout | undefined;
    let lastFlush = -Infinity;
    let sawToken = false;
    const flush = (): void => {
      timer = undefined;
      if (pending === "") return;
      write(pending);
      pending = "";
      lastFlush = performance.now();
    };
    const ping = setInterval(() => write(PING_FRAME), this.pingMs);
    // Idempotent: called on `end`, on client abort (Koa's pipeline destroys `out`) and on server close.
    const close = (): void => {
      if (!open) return;
      if (timer) clearTimeout(timer);
      flush();
      open = false;
      clearInterval(ping);
      unsubscribe();
      this.streams.delete(out);
      if (!out.writableEnded && !out.destroyed) out.end();
    };
    this.streams.set(out, close);
    out.once("close", close);
    ctx.res.once("close", () => {
      close();
      out.destroy();
    });
    write(PING_FRAME);
    unsubscribe = job.subscribe(afterId, (stored) => {
      pending += stored.frame;
      if (stored.event.event === "end") return close();
      // The first token is never held: time to first token is what people feel.
      if (stored.event.event === "token" && !sawToken) {
        sawToken = true;
        if (timer) clearTimeout(timer);
        return flush();
      }
      if (timer) return;
      const wait = lastFlush + COALESCE_MS - performance.now();
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    });
    // A finished job has replayed all it will ever send (none at all when resuming after its `end`): close now.
    if (job.finished) close();
  }

  listen(port: number, host = "127.0.0.1"): Promise<string> {
    return new Promise((resolve, reject) => {
      const server = this.app.listen({ port, host });
      server.keepAliveTimeout = 65_000;
      server.once("error", reject);
      server.once("listening", () => {
        server.off("error", reject);
        this.server = server;
        const addr = server.address() as AddressInfo;
        const h = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
        this.url = `http://${h}:${addr.port}`;
        resolve(this.url);
      });
    });
  }

  /**
   * Cancels running jobs and gives them a moment to end, so subscribers read their `end`; then
   * closes the streams and the listener.
   */
  async close(settleMs = 2000): Promise<void> {
    const why = "The daemon is shutting down.";
    this.registry.cancelAll(why);
    if (!(await this.registry.settle(settleMs))) {
      for (const job of this.registry.running()) job.end("cancelled", { error: new CancelledError(why) });
    }
    for (const close of [...this.streams.values()]) close();
    this.registry.dispose();
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Let answers in flight finish (up to 1 s); then drop keep-alive and never-used connections too.
    const deadline = Date.now() + 1000;
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    server.closeAllConnections();
    await closed;
  }
}
