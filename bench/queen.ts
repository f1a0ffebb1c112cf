/**
 * Queen overhead: infer through the queen (queen -> hive -> worker) against the same worker asked
 * directly, same model, prompt and settings; then `status` jobs per second through the job API.
 * Run after `npm run build`: node --import=tsx bench/queen.ts [--rounds N] [--tokens N] [--model ID]
 */
import { parseArgs } from "node:util";
import { JobClient } from "../shared/job-client.js";
import { startQueen } from "./lib/cluster.js";
import { median, quantile } from "./lib/stats.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, tokens: { type: "string" }, model: { type: "string" }, seconds: { type: "string" } } });
const ROUNDS = Number(values.rounds ?? 8);
const TOKENS = Number(values.tokens ?? 256);
const MODEL = values.model ?? "rbee-tiny";
const STATUS_SECONDS = Number(values.seconds ?? 3);

interface Sample {
  ttftMs: number;
  tokensPerS: number;
  tokens: number;
}


/** One infer job, timed at the client: TTFT from the POST, decode rate between first and last token. */
async function inferOnce(client: JobClient, op: object): Promise<Sample> {
  const began = performance.now();
  const { job_id } = await client.create(op);
  let first = 0;
  let last = 0;
  let tokens = 0;
  for await (const e of client.stream(job_id)) {
    if (e.event === "token") {
      last = performance.now();
      if (tokens++ === 0) first = last;
    }
    if (e.event === "end" && e.data.status !== "completed") throw new Error(`infer ended ${e.data.status}: ${JSON.stringify(e.data.error)}`);
  }
  return { ttftMs: first - began, tokensPerS: tokens > 1 ? ((tokens - 1) * 1000) / (last - first) : 0, tokens };
}

async function main(): Promise<void> {
  const queen = await startQueen({ prefix: "rbee-bench-queen-" });
  try {
    const q = new JobClient(queen.url);
    const op = { operation: "infer", model: MODEL, prompt: "The quick brown fox", max_tokens: TOKENS, ignore_eos: true, temperature: 0, seed: 42 };
    await inferOnce(q, op); // starts the hive and loads the worker
    let workerUrl: string | undefined;
    let workerId: string | undefined;
    let hiveUrl: string | undefined;
    for (let i = 0; i < 100 && !workerUrl; i++) {
      const { job_id } = await q.create({ operation: "status" });
      for await (const e of q.stream(job_id)) {
        if (e.event !== "data") continue;
        const hives = (e.data.payload as { hives: Array<{ url: string; workers: Array<{ url?: string; worker_id: string; model: string; state: string }> }> }).hives;
        const h = hives.find((x) => x.workers.some((y) => y.model === MODEL && y.state === "ready"));
        const w = h?.workers.find((x) => x.model === MODEL && x.state === "ready");
        hiveUrl = h?.url;
        workerUrl = w?.url;
        workerId = w?.worker_id;
      }
      if (!workerUrl) await new Promise((r) => setTimeout(r, 100));
    }
    if (!workerUrl) throw new Error("no ready worker appeared in status");
    const w = new JobClient(workerUrl);
    const hv = new JobClient(hiveUrl ?? "");
    const direct: Sample[] = [];
    const viaHive: Sample[] = [];
    const viaQueen: Sample[] = [];
    await inferOnce(w, op); // warm the direct paths too
    await inferOnce(hv, op);
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, so drift (thermal, other load) hits every path alike.
      direct.push(await inferOnce(w, op));
      viaHive.push(await inferOnce(hv, op));
      viaQueen.push(await inferOnce(q, op));
    }
    const row = (name: string, s: Sample[]): string =>
      `| ${name.padEnd(28)} | ${median(s.map((x) => x.tokensPerS)).toFixed(1).padStart(10)} | ${median(s.map((x) => x.ttftMs)).toFixed(2).padStart(9)} | ${quantile(s.map((x) => x.ttftMs), 0.9).toFixed(2).padStart(9)} |`;
    const ratio = median(viaQueen.map((x) => x.tokensPerS)) / median(direct.map((x) => x.tokensPerS));
    const addedTtft = median(viaQueen.map((x) => x.ttftMs)) - median(direct.map((x) => x.ttftMs));
    console.log(`\ninfer ${MODEL}, ${TOKENS} tokens (ignore_eos), ${ROUNDS} rounds each, worker ${workerId}`);
    console.log("| path                         | decode t/s | TTFT p50  | TTFT p90  |");
    console.log("| ---------------------------- | ---------- | --------- | --------- |");
    console.log(row("worker directly (1 hop)", direct));
    console.log(row("hive -> worker (2 hops)", viaHive));
    console.log(row("queen -> hive -> worker (3)", viaQueen));
    console.log(`decode ratio queen/direct: ${ratio.toFixed(3)} (goal >= 0.95); added median TTFT: ${addedTtft.toFixed(2)} ms (goal <= 10 ms)`);

    const latencies: number[] = [];
    const until = performance.now() + STATUS_SECONDS * 1000;
    const began = performance.now();
    while (performance.now() < until) {
      const t0 = performance.now();
      const { job_id } = await q.create({ operation: "status" });
      for await (const e of q.stream(job_id)) void e;
      latencies.push(performance.now() - t0);
    }
    const elapsed = (performance.now() - began) / 1000;
    console.log(`\nstatus jobs (create + stream to end, one at a time, ${STATUS_SECONDS} s)`);
    console.log(`jobs/s ${(latencies.length / elapsed).toFixed(0)}, p50 ${median(latencies).toFixed(2)} ms, p99 ${quantile(latencies, 0.99).toFixed(2)} ms, n=${latencies.length}`);
  } finally {
    await queen.stop();
  }
}

await main();
