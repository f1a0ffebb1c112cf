import type Router from "@koa/router";
import type Koa from "koa";
import { RbeeError } from "../../shared/errors.js";
import type { Job } from "../../shared/job.js";
import { readJson, type JobServer } from "../../shared/job-server.js";
import { isPlainObject } from "../../shared/schema.js";
import { parseOperation, type Operation } from "../../shared/protocol.js";
import { OpenAiError, openAiErrorBody, toOpenAiError } from "./openai-errors.js";
import {
  DEFAULT_MAX_TOKENS, parseChatRequest, parseCompletionRequest, parseEmbeddingsRequest,
} from "./openai-request.js";
import { embeddingsBody, responseMeta, type CompletionKind } from "./openai-response.js";
import { collectCompletion, earlyFailure, firstOutput, streamCompletion } from "./openai-stream.js";

/**
 * The queen's OpenAI-compatible API (CONTRACT.md section 5). Every request is an ordinary queen job,
 * created in-process like POST /v1/jobs, so it is listed, streamable and cancellable like any other.
 */

export interface OpenAiModel {
  id: string;
  hives: string[];
  /** When known, a request without max_tokens may run this long ("until the context is full"). */
  context_length?: number;
}

export interface OpenAiDeps {
  // The queen's server accepts every operation; only infer and embed are created here.
  server: JobServer<any>;
  models: () => Promise<OpenAiModel[]>;
}

/** Paths whose errors use OpenAI's shape, for middleware that answers before the routes (auth). */
export const isOpenAiPath = (path: string): boolean =>
  path === "/v1/models" || path.startsWith("/v1/models/") || path === "/v1/chat/completions" ||
  path === "/v1/completions" || path === "/v1/embeddings";

type Handler = (ctx: Koa.Context) => Promise<void>;

/** Errors of OpenAI routes, thrown ones and body parse errors included, answer in OpenAI's shape and status. */
const route = (handler: Handler) => async (ctx: Koa.Context): Promise<void> => {
  ctx.state["formatError"] = openAiErrorBody;
  try {
    await handler(ctx);
  } catch (err) {
    throw toOpenAiError(err);
  }
};

export function mountOpenAi(router: Router, deps: OpenAiDeps): void {
  const created = Math.floor(Date.now() / 1000);
  const modelObject = (m: OpenAiModel) => ({ id: m.id, object: "model", created, owned_by: "rbee" });

  router.get("/v1/models", route(async (ctx) => {
    const seen = new Set<string>();
    const data = (await deps.models()).filter((m) => !seen.has(m.id) && seen.add(m.id)).map(modelObject);
    ctx.body = { object: "list", data };
  }));
  router.get("/v1/models/:model", route(async (ctx) => {
    ctx.body = modelObject(await findModel(deps, ctx.params["model"] ?? ""));
  }));
  router.post("/v1/chat/completions", route((ctx) => complete(ctx, deps, "chat")));
  router.post("/v1/completions", route((ctx) => complete(ctx, deps, "text")));
  router.post("/v1/embeddings", route((ctx) => embed(ctx, deps)));
}

/** Refuses a model no hive has, before any job exists. */
async function findModel(deps: OpenAiDeps, id: string): Promise<OpenAiModel> {
  const models = await deps.models();
  const found = models.find((m) => m.id === id);
  if (found) return found;
  const known = models.map((m) => m.id).slice(0, 10).join(", ");
  const hint = known ? `models rbee can serve: ${known}` : "no hive reports any model yet (is a hive online?)";
  throw new OpenAiError("MODEL_NOT_FOUND",
    `The model "${id.slice(0, 128)}" is not in any hive's catalog; ${hint}. Add one with "rbee model download" or "rbee model import".`, "model");
}

/** Creates the job as POST /v1/jobs would, and cancels it if the client leaves before the answer is written. */
function startJob(ctx: Koa.Context, deps: OpenAiDeps, op: Operation): { job: Job; stop: AbortSignal } {
  deps.server.options.validate?.(op);
  // A client gone while its body was read or the models were asked for would never see its 'close'.
  if (ctx.req.socket.destroyed) throw new OpenAiError("CANCELLED", "The client disconnected before its job started.");
  const job = deps.server.createJob(op, ctx.get("x-correlation-id") || undefined);
  ctx.set("X-Rbee-Job-ID", job.id);
  ctx.set("X-Correlation-ID", job.correlationId);
  const gone = new AbortController();
  ctx.res.once("close", () => {
    if (ctx.res.writableFinished) return;
    job.cancel("The client disconnected.");
    gone.abort();
  });
  return { job, stop: gone.signal };
}

async function complete(ctx: Koa.Context, deps: OpenAiDeps, kind: CompletionKind): Promise<void> {
  const body = await readJson(ctx);
  const req = kind === "chat" ? parseChatRequest(body) : parseCompletionRequest(body);
  const model = await findModel(deps, req.model);
  const op = parseOperation({
    ...req.fields,
    model: req.model,
    max_tokens: req.fields["max_tokens"] ?? model.context_length ?? DEFAULT_MAX_TOKENS,
    ...("messages" in req ? { messages: req.messages } : { prompt: req.prompt }),
  }, ["infer"]);
  const { job, stop } = startJob(ctx, deps, op);
  const meta = responseMeta(kind, job.id, req.model);
  if (!req.stream) {
    ctx.body = await collectCompletion(job, meta, stop);
    return;
  }
  await firstOutput(job);
  const early = earlyFailure(job);
  if (early) throw early;
  streamCompletion(ctx, job, meta, req.includeUsage, stop);
}

interface EmbedPayload {
  embeddings: number[][];
  usage?: { prompt_tokens?: number };
}
const isEmbedPayload = (p: unknown): p is EmbedPayload =>
  isPlainObject(p) && Array.isArray(p["embeddings"]) && p["embeddings"].every((v) => Array.isArray(v));

async function embed(ctx: Koa.Context, deps: OpenAiDeps): Promise<void> {
  const req = parseEmbeddingsRequest(await readJson(ctx));
  await findModel(deps, req.model);
  const { job, stop } = startJob(ctx, deps, parseOperation(req.op, ["embed"]));
  let payload: EmbedPayload | undefined;
  for await (const e of job.stream(0, stop)) {
    // Only the embed result: a placement may also relay other data events (a spawned worker).
    if (e.event === "data" && e.data.action === "embed" && isEmbedPayload(e.data.payload)) payload = e.data.payload;
    if (e.event === "end" && e.data.status !== "completed")
      throw new OpenAiError(e.data.error?.code ?? "INTERNAL", e.data.error?.message ?? `The embed job ended ${e.data.status}.`);
  }
  if (stop.aborted) throw new OpenAiError("CANCELLED", "The client disconnected before the job ended.");
  if (!payload) throw new RbeeError("INTERNAL", `The embed job ${job.id} ended without embeddings.`);
  ctx.body = embeddingsBody(req.model, payload.embeddings, req.encoding, payload.usage?.prompt_tokens ?? 0);
}
