/**
 * Load through the queen, on a queen of its own (temp RBEE_HOME, localhost hive on a free port):
 * `status` jobs N at a time (jobs/s, p50/p99 from POST to `end`); concurrent `infer` jobs onto one
 * worker spawned with `parallel` slots; and the queen's RSS (VmRSS) after the first 100 jobs
 * against after all of them, which a bounded job registry keeps flat.
 * Run after `npm run build`: node --import=tsx bench/load.ts [--status N] [--concurrency N]
 * [--infers N] [--parallel N] [--tokens N] [--memory-jobs N]. `runLoad(opts)` is the same, for bench/run.ts.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { request } from "undici";
import { JobClient } from "../shared/job-client.js";
import type { EndData } from "../shared/protocol.js";
import { startQueen } from "./lib/cluster.js";
import { rssMiB } from "./lib/proc.js";
import { quantile, round } from "./lib/stats.js";

export interface LoadOptions {
  /** `status` jobs in the throughput run (default 1000) */
  statusJobs?: number;
  /** jobs in flight at once for `status` (default 50) */
  concurrency?: number;
  /** `infer` jobs sent at once onto one worker (default 32) */
  inferJobs?: number;
  /** the worker's slots (default 8) */
  parallel?: number;
  /** tokens per infer (default 16, ignore_eos) */
  tokens?: number;
  /** jobs run in all before the last memory reading (default 10000) */
  memoryJobs?: number;
  /** progress lines (default: none) */
  log?: (line: string) => void;
}

export interface Throughput {
  jobs: number;
  completed: number;
  failed: number;
  seconds: number;
  jobs_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

export interface LoadReport {
  status: Throughput & { concurrency: number };
  /** max_busy_slots: the most slots the worker reported busy at once while the jobs ran */
  infer: Throughput & { parallel: number; max_busy_slots: number; tokens: number; tokens_per_s: number; worker_id: string };
  memory: { jobs: number; rss_after_100_mb: number; rss_after_all_mb: number; delta_mb: number; jobs_listed: number; max_finished_jobs: number };
}

const MB = 1024 * 1024;
const rssBytes = async (pid: number): Promise<number> => (await rssMiB(pid)) * MB;

/** Runs one job to its end; its `end`, its last `data` payload, its tokens and the time from POST to `end`. */
async function runOne(client: JobClient, op: object): Promise<{ end: EndData; ms: number; tokens: number; payload: unknown }> {
  const began = performance.now();
  const { job_id } = await client.create(op);
  let payload: unknown;
  for await (const e of client.stream(job_id)) {
    if (e.event === "data") payload = e.data.payload;
    // Tokens as the worker counts them (usage), whatever the events carried.
    if (e.event === "end") return { end: e.data, ms: performance.now() - began, tokens: e.data.usage?.completion_tokens ?? 0, payload };
  }
  throw new Error(`the stream of ${job_id} closed without end`);
}

/** `count` jobs, `concurrency` in flight; `onDone(n)` after each. */
async function pool(client: JobClient, count: number, concurrency: number, op: () => object, onDone?: (n: number) => Promise<void>): Promise<Throughput & { tokens: number }> {
  const latencies: number[] = [];
  let next = 0;
  let completed = 0;
  let failed = 0;
  let tokens = 0;
  let firstError = "";
  const began = performance.now();
  const lane = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        const r = await runOne(client, op());
        latencies.push(r.ms);
        tokens += r.tokens;
        if (r.end.status === "completed") completed++;
        else {
          failed++;
          firstError ||= `${r.end.error?.code}: ${r.end.error?.message}`;
        }
      } catch (err) {
        failed++;
        firstError ||= (err as Error).message;
      }
      await onDone?.(completed + failed);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  const seconds = (performance.now() - began) / 1000;
  if (firstError) process.stderr.write(`load: ${failed} of ${count} jobs failed, the first: ${firstError}\n`);
  return { jobs: count, completed, failed, seconds: round(seconds, 2), jobs_per_s: round(count / seconds), p50_ms: round(quantile(latencies, 0.5)), p99_ms: round(quantile(latencies, 0.99)), tokens };
}

/** Polls the worker's busy_slots until stopped; resolves with the most seen at once. */
function watchBusy(workerUrl: string): { stop: () => Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const info = await request(`${workerUrl}/v1/info`).then((r) => r.body.json() as Promise<{ busy_slots?: number }>).catch(() => ({ busy_slots: 0 }));
      max = Math.max(max, info.busy_slots ?? 0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { stop: async () => ((running = false), await loop, max) };
}

export async function runLoad(opts: LoadOptions = {}): Promise<LoadReport> {
  const o = { statusJobs: 1000, concurrency: 50, inferJobs: 32, parallel: 8, tokens: 16, memoryJobs: 10_000, ...opts };
  const log = opts.log ?? (() => {});
  const queen = await startQueen({ prefix: "rbee-bench-load-" });
  try {
    const client = new JobClient(queen.url, { label: "queen" });
    let jobsRun = 0;
    let rss100 = 0;
    const counted = async (): Promise<void> => {
      jobsRun++;
      if (jobsRun === 100) rss100 = await rssBytes(queen.pid);
    };

    log("starting the localhost hive");
    const hive = await runOne(client, { operation: "hive_start", hive_id: "localhost" });
    if (hive.end.status !== "completed") throw new Error(`hive_start failed: ${JSON.stringify(hive.end.error)}`);
    await counted();

    log(`${o.statusJobs} status jobs, ${o.concurrency} at a time`);
    const { tokens: _s, ...status } = await pool(client, o.statusJobs, o.concurrency, () => ({ operation: "status" }), counted);

    log(`a worker with ${o.parallel} slots, then ${o.inferJobs} infer jobs at once`);
    const spawned = await runOne(client, { operation: "worker_spawn", hive_id: "localhost", model: "rbee-tiny", parallel: o.parallel, keep_alive: -1 });
    await counted();
    if (spawned.end.status !== "completed") throw new Error(`worker_spawn failed: ${JSON.stringify(spawned.end.error)}`);
    const { worker_id: workerId, url: workerUrl } = spawned.payload as { worker_id: string; url: string };
    const prompt = (i: number): object => ({ operation: "infer", prompt: `bee number ${i} flies to the hive`, max_tokens: o.tokens, ignore_eos: true, seed: i, worker_id: workerId });
    let i = 0;
    const busy = watchBusy(workerUrl);
    const inferRun = await pool(client, o.inferJobs, o.inferJobs, () => prompt(i++), counted);
    const maxBusy = await busy.stop();
    const { tokens, ...infer } = inferRun;

    const rest = Math.max(0, o.memoryJobs - jobsRun);
    log(`${rest} more status jobs (${o.memoryJobs} in all) for the memory reading`);
    await pool(client, rest, o.concurrency, () => ({ operation: "status" }), counted);
    if (rss100 === 0) rss100 = await rssBytes(queen.pid);
    const rssAll = await rssBytes(queen.pid);
    const listed = await request(`${queen.url}/v1/jobs`).then(async (r) => ((await r.body.json()) as { jobs: unknown[] }).jobs.length);
    return {
      status: { ...status, concurrency: o.concurrency },
      infer: { ...infer, parallel: o.parallel, max_busy_slots: maxBusy, tokens, tokens_per_s: round(tokens / infer.seconds), worker_id: workerId },
      memory: { jobs: jobsRun, rss_after_100_mb: round(rss100 / MB), rss_after_all_mb: round(rssAll / MB), delta_mb: round((rssAll - rss100) / MB), jobs_listed: listed, max_finished_jobs: 1000 },
    };
  } finally {
    await queen.stop();
  }
}

export function formatLoad(r: LoadReport): string {
  const row = (name: string, t: Throughput, extra: string): string =>
    `${name.padEnd(22)} ${`${t.completed}/${t.jobs}`.padStart(11)} ${String(t.jobs_per_s).padStart(8)} ${String(t.p50_ms).padStart(9)} ${String(t.p99_ms).padStart(9)}  ${extra}`;
  return [
    `${"load (through the queen)".padEnd(22)} ${"completed".padStart(11)} ${"jobs/s".padStart(8)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)}`,
    row(`status x${r.status.concurrency}`, r.status, ""),
    row(`infer x${r.infer.jobs}, parallel ${r.infer.parallel}`, r.infer, `${r.infer.tokens_per_s} tokens/s, up to ${r.infer.max_busy_slots} slots busy`),
    `queen RSS: ${r.memory.rss_after_100_mb} MB after 100 jobs, ${r.memory.rss_after_all_mb} MB after ${r.memory.jobs} (${r.memory.delta_mb >= 0 ? "+" : ""}${r.memory.delta_mb} MB); ${r.memory.jobs_listed} jobs kept`,
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { status: { type: "string" }, concurrency: { type: "string" }, infers: { type: "string" }, parallel: { type: "string" }, tokens: { type: "string" }, "memory-jobs": { type: "string" } } });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const report = await runLoad({
    ...(values.status ? { statusJobs: num(values.status)! } : {}),
    ...(values.concurrency ? { concurrency: num(values.concurrency)! } : {}),
    ...(values.infers ? { inferJobs: num(values.infers)! } : {}),
    ...(values.parallel ? { parallel: num(values.parallel)! } : {}),
    ...(values.tokens ? { tokens: num(values.tokens)! } : {}),
    ...(values["memory-jobs"] ? { memoryJobs: num(values["memory-jobs"])! } : {}),
    log: (line) => process.stderr.write(`load: ${line}\n`),
  });
  process.stdout.write(`${formatLoad(report)}\n${JSON.stringify(report)}\n`);
}
