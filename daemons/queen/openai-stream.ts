import { openEventStream } from "../../shared/job-server.js";
import type Koa from "koa";
import { RbeeError } from "../../shared/errors.js";
import type { Job } from "../../shared/job.js";
import type { EndData } from "../../shared/protocol.js";
import { PING_FRAME } from "../../shared/sse.js";
import { OpenAiError, openAiErrorBody } from "./openai-errors.js";
import { chunkBody, completionBody, openAiUsage, usageChunkBody, type ResponseMeta } from "./openai-response.js";

/**
 * A running `infer` job told as an OpenAI completion: whole (collect) or as `data:` chunks (stream).
 * Tokens are every `token` event on the queen job's stream (the worker's, relayed up the cascade).
 */

/** How long a stream waits for the first token before it commits to 200; earlier failures keep their HTTP status. */
export const COMMIT_WAIT_MS = 5_000;
const PING_MS = 15_000;

const failure = (end: EndData): OpenAiError =>
  new OpenAiError(end.error?.code ?? "INTERNAL", end.error?.message ?? `The job ended ${end.status}.`);

/** Waits until the job emits its first token or ends, at most `ms`. */
export function firstOutput(job: Job, ms = COMMIT_WAIT_MS): Promise<void> {
  if (job.finished || job.tokenCount > 0) return Promise.resolve();
  return new Promise((resolve) => {
    let unsubscribe = (): void => {};
    const done = (): void => {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    };
    const timer = setTimeout(done, ms);
    unsubscribe = job.subscribe(job.lastEventId, (s) => {
      if (s.event.event === "token" || s.event.event === "end") done();
    });
  });
}

/** A job that failed or was cancelled before its first token: answered with an HTTP error, not a stream. */
export function earlyFailure(job: Job): OpenAiError | undefined {
  const last = job.events.at(-1)?.event;
  if (job.tokenCount > 0 || last?.event !== "end" || last.data.status === "completed") return undefined;
  return failure(last.data);
}

/** The whole answer once the job ends; a failed or cancelled job is thrown as its error. */
export async function collectCompletion(job: Job, meta: ResponseMeta, stop: AbortSignal): Promise<object> {
  let text = "";
  let tokens = 0;
  for await (const e of job.stream(0, stop)) {
    if (e.event === "token") {
      text += e.data.text;
      tokens++;
    } else if (e.event === "end") {
      if (e.data.status !== "completed") throw failure(e.data);
      return completionBody(meta, text, e.data.finish_reason ?? "stop", openAiUsage(e.data.usage, tokens));
    }
  }
  throw new OpenAiError("CANCELLED", "The client disconnected before the job ended.");
}

/**
 * Answers `text/event-stream`: a role chunk (chat), one chunk per token, a finish chunk, the usage chunk
 * when asked, then `[DONE]`. A failure after this point is one `data: {"error":...}` line and no `[DONE]`.
 */
export function streamCompletion(ctx: Koa.Context, job: Job, meta: ResponseMeta, includeUsage: boolean, stop: AbortSignal): void {
  const out = openEventStream(ctx);
  const write = (frame: string): void => {
    if (!out.destroyed && !out.writableEnded) out.write(frame);
  };
  const send = (body: object | string): void => write(`data: ${typeof body === "string" ? body : JSON.stringify(body)}\n\n`);
  // SSE comments keep proxies and idle timers from closing a stream while a model loads or thinks.
  const ping = setInterval(() => write(PING_FRAME), PING_MS);
  void (async () => {
    let tokens = 0;
    try {
      if (meta.kind === "chat") send(chunkBody(meta, { role: "assistant", text: "" }, includeUsage));
      for await (const e of job.stream(0, stop)) {
        if (e.event === "token") {
          tokens++;
          send(chunkBody(meta, { text: e.data.text }, includeUsage));
        } else if (e.event === "end") {
          if (e.data.status !== "completed") {
            send(openAiErrorBody(failure(e.data)));
            return;
          }
          send(chunkBody(meta, { finish: e.data.finish_reason ?? "stop" }, includeUsage));
          if (includeUsage) send(usageChunkBody(meta, openAiUsage(e.data.usage, tokens)));
          send("[DONE]");
        }
      }
    } catch (err) {
      send(openAiErrorBody(err instanceof RbeeError ? err : new RbeeError("INTERNAL", String(err))));
    } finally {
      clearInterval(ping);
      out.end();
    }
  })();
}
