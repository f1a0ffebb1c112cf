import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { RbeeError, isErrorCode } from "../../shared/errors.js";
import type { Job } from "../../shared/job.js";
import { JobServer } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import type { EmbedOperation, InferOperation } from "../../shared/protocol.js";
import { mountOpenAi, type OpenAiModel } from "../../daemons/queen/openai.js";
import type { Teardown } from "../_helpers/cleanup.js";

/**
 * A real JobServer on port 0 with the OpenAI routes mounted and fake `infer`/`embed` handlers, driven by
 * the prompt (or last message): "fail-early CODE", "fail-mid CODE", "slow", "hold", else the tokens TOKENS.
 */

export const TOKENS = ["Hello", ",", " world"];
export const VECTORS: Record<string, number[]> = { a: [0.5, -0.25, 1], b: [0.1, 0.2, 0.3] };
export const MODELS: OpenAiModel[] = [
  { id: "rbee-tiny", hives: ["localhost"] },
  { id: "llama-3.2-1b", hives: ["localhost", "gpu-box"] },
];

export interface Fixture {
  url: string;
  server: JobServer<"infer" | "embed">;
  client: OpenAI;
  /** Operations the fake handlers received, by job id: what the OpenAI request was mapped to. */
  ops: Map<string, InferOperation | EmbedOperation>;
  /** Job ids whose handler saw its cancel signal. */
  aborted: Set<string>;
  /** Lets "hold" jobs go on to emit their tokens. */
  release: () => void;
}

function codeOf(text: string): RbeeError {
  const code = text.split(" ")[1] ?? "INTERNAL";
  return new RbeeError(isErrorCode(code) ? code : "INTERNAL", `Fake failure ${code}.`);
}

async function fakeInfer(op: InferOperation, job: Job, aborted: Set<string>, held: Promise<void>) {
  const script = op.prompt ?? op.messages?.at(-1)?.content ?? "";
  job.narrate("infer", "Fake worker starts.");
  if (script.startsWith("fail-early")) throw codeOf(script);
  if (script === "hold") await held;
  if (script === "slow") {
    // Ticks until cancelled; bounded so a broken cancel cannot run forever.
    for (let i = 0; i < 1000; i++) {
      job.token("tick ");
      try {
        await sleep(20, undefined, { signal: job.signal });
      } catch {
        aborted.add(job.id);
        throw job.signal.reason;
      }
    }
    return { finish_reason: "length" as const };
  }
  const tokens = TOKENS.slice(0, op.max_tokens);
  for (const t of tokens) job.token(t);
  if (script.startsWith("fail-mid")) throw codeOf(script);
  return {
    finish_reason: tokens.length < TOKENS.length ? ("length" as const) : ("stop" as const),
    usage: { prompt_tokens: 5, completion_tokens: tokens.length },
  };
}

async function fakeEmbed(op: EmbedOperation, job: Job) {
  if (op.input[0]?.startsWith("fail-early")) throw codeOf(op.input[0]);
  job.data("worker_spawn", { worker_id: "w1" });
  job.data("embed", { embeddings: op.input.map((s) => VECTORS[s] ?? [0]), usage: { prompt_tokens: op.input.length * 2 } });
}

export async function startFixture(t: Teardown): Promise<Fixture> {
  const ops = new Map<string, InferOperation | EmbedOperation>();
  const aborted = new Set<string>();
  let release = (): void => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const server = new JobServer<"infer" | "embed">({
    service: "queen-rbee",
    version: "0.0.0-test",
    logger: new Logger("queen-rbee", null, "/dev/null"),
    info: () => ({}),
    operations: {
      infer: (op, job) => (ops.set(job.id, op), fakeInfer(op, job, aborted, held)),
      embed: (op, job) => (ops.set(job.id, op), fakeEmbed(op, job)),
    },
    routes: (router, s) => mountOpenAi(router, { server: s, models: async () => MODELS }),
  });
  const url = await server.listen(0);
  t.teardown(() => (release(), server.close()));
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0, timeout: 20_000 });
  return { url, server, client, ops, aborted, release };
}

export async function postRaw(url: string, path: string, body: unknown): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer x" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}
