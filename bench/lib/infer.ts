/** One infer, timed at the client: through a daemon's job API, or through the `rbee infer --json` process. */
import { createInterface } from "node:readline";
import * as path from "node:path";
import type { JobClient } from "../../shared/job-client.js";
import { ROOT } from "./machine.js";
import { spawnTracked } from "./proc.js";
import { decodeRate } from "./stats.js";

export interface InferSample {
  /** from the request (POST, or the process spawn for the CLI) to the first token, ms */
  ttftMs: number;
  /** tokens after the first over the time they took */
  tokensPerS: number;
  tokens: number;
  /** from the request to `end`, ms */
  totalMs: number;
}

export interface InferRequest {
  prompt: string;
  model: string;
  maxTokens: number;
  temperature?: number;
  seed?: number;
  workerId?: string;
}

export function inferOp(r: InferRequest): Record<string, unknown> {
  return {
    operation: "infer",
    prompt: r.prompt,
    model: r.model,
    max_tokens: r.maxTokens,
    ignore_eos: true,
    temperature: r.temperature ?? 0,
    seed: r.seed ?? 42,
    keep_alive: -1,
    ...(r.workerId !== undefined ? { worker_id: r.workerId } : {}),
  };
}

/** POST /v1/jobs then the SSE stream to `end`; throws unless it completed. */
export async function inferViaJobApi(client: JobClient, op: Record<string, unknown>): Promise<InferSample> {
  const began = performance.now();
  const { job_id } = await client.create(op);
  const times: number[] = [];
  for await (const e of client.stream(job_id)) {
    if (e.event === "token") times.push(performance.now());
    else if (e.event === "end") {
      if (e.data.status !== "completed") throw new Error(`infer ${job_id} ended ${e.data.status}: ${e.data.error?.code} ${e.data.error?.message}`);
      break;
    }
  }
  const end = performance.now();
  return { ttftMs: (times[0] ?? Number.NaN) - began, tokensPerS: decodeRate(times), tokens: times.length, totalMs: end - began };
}

export const KEEPER = path.join(ROOT, "dist/cli/rbee.js");

/** `rbee infer --json` as its own process: TTFT from the spawn to the first token line, until the process exits. */
export function inferViaCli(r: InferRequest, env: NodeJS.ProcessEnv, extraArgs: string[] = []): Promise<InferSample & { exitMs: number }> {
  const args = [KEEPER, "infer", "--json", "--model", r.model, "--max-tokens", String(r.maxTokens), "--ignore-eos", "--temperature", String(r.temperature ?? 0), "--seed", String(r.seed ?? 42), "--keep-alive", "-1"];
  if (r.workerId !== undefined) args.push("--worker", r.workerId);
  args.push(...extraArgs, "--prompt", r.prompt);
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const child = spawnTracked(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const times: number[] = [];
    let endAt = Number.NaN;
    let status = "";
    let err = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-2000)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const now = performance.now();
      if (line.startsWith('{"event":"token"')) times.push(now);
      else if (line.startsWith('{"event":"end"')) {
        endAt = now;
        status = (JSON.parse(line) as { status: string }).status;
      }
    });
    child.once("error", reject);
    child.once("close", (code) => {
      const exitMs = performance.now() - began;
      if (code !== 0 || status !== "completed") reject(new Error(`rbee infer exited ${code} (${status}): ${err.trim()}`));
      else resolve({ ttftMs: (times[0] ?? Number.NaN) - began, tokensPerS: decodeRate(times), tokens: times.length, totalMs: endAt - began, exitMs });
    });
  });
}
