/**
 * llm-worker-rbee throughput. (1) Decode tokens/s read through the worker's HTTP event stream against the same
 * model generated in-process with node-llama-cpp (same device, threads, context, greedy, EOS ignored), rounds
 * alternating so machine noise hits both; (2) aggregate tokens/s of 8 concurrent jobs on `--parallel 8` against
 * `--parallel 1`. Prints a table and one JSON line. Next to wall-clock tokens/s it reports CPU milliseconds per token
 * (the worker process's own, from /proc, against this process's): on a busy machine wall time mostly measures the
 * neighbours, CPU time still measures the work.
 * Run after `npm run build`: node --import=tsx bench/worker.ts [--model PATH | --tiny] [--tokens 128] [--rounds 5]
 *   [--jobs 8] [--job-tokens 64] [--device auto|cpu|gpu:N] [--threads N]
 * Without --model the ~100M preset of rbee-tiny's recipe is written once into bench/.cache (ignored by git).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, stat } from "node:fs/promises";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { binaryCommand } from "../shared/binaries.js";
import { JobClient } from "../shared/job-client.js";
import { RBEE_BENCH_100M, RBEE_TINY, writeTinyModel } from "../shared/rbee-tiny.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tiny: { type: "boolean", default: false },
    tokens: { type: "string", default: "128" },
    rounds: { type: "string", default: "7" },
    jobs: { type: "string", default: "8" },
    "job-tokens": { type: "string", default: "64" },
    device: { type: "string", default: "auto" },
    threads: { type: "string" },
    "context-size": { type: "string", default: "1024" },
  },
});
const TOKENS = Number(values.tokens);
const ROUNDS = Number(values.rounds);
const JOBS = Number(values.jobs);
const JOB_TOKENS = Number(values["job-tokens"]);
const CONTEXT = Number(values["context-size"]);
const PROMPT = "the bee and the honey in the hive of the queen";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
/** CPU seconds a process has used (user + system, from /proc; clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const ownCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Decode speed from token arrival times: tokens after the first over the time they took. */
const decodeRate = (times: number[]): number => (times.length > 1 ? ((times.length - 1) * 1000) / ((times.at(-1) as number) - (times[0] as number)) : 0);

async function modelPath(): Promise<string> {
  if (values.model) return path.resolve(values.model);
  const preset = values.tiny ? RBEE_TINY : RBEE_BENCH_100M;
  // the same file name bench/threads.ts uses, so one write serves both
  const file = path.join(import.meta.dirname, ".cache", values.tiny ? "rbee-tiny.gguf" : "rbee-bench-100m-f16.gguf");
  if (!(await stat(file).then(() => true, () => false))) {
    await mkdir(path.dirname(file), { recursive: true });
    console.error(`writing ${file} ...`);
    await writeTinyModel(file, preset);
  }
  return file;
}

interface Worker {
  client: JobClient;
  info: Record<string, unknown>;
  child: ChildProcess;
}

async function startWorker(model: string, parallel: number): Promise<Worker> {
  const bin = binaryCommand("llm-worker-rbee");
  const args = [...bin.args, "--port", "0", "--model", model, "--device", values.device, "--parallel", String(parallel), "--context-size", String(CONTEXT)];
  if (values.threads) args.push("--threads", values.threads);
  const child = spawn(bin.command, args, { stdio: ["ignore", "pipe", "ignore"] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (l) => l.startsWith("listening ") && resolve(l.slice(10)));
    child.once("exit", (code) => reject(new Error(`worker exited ${code}`)));
  });
  const client = new JobClient(url, { label: "worker" });
  for (;;) {
    const info = await client.getJson<Record<string, unknown>>("/v1/info");
    if (info["state"] === "ready") return { client, info, child };
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One infer job read over HTTP: the arrival time of every token event. */
async function viaWorker(w: Worker, op: object): Promise<number[]> {
  const { job_id } = await w.client.create(op);
  const times: number[] = [];
  for await (const e of w.client.stream(job_id)) {
    if (e.event === "token") times.push(performance.now());
    if (e.event === "end" && e.data.status !== "completed") throw new Error(`job ${job_id} ended ${e.data.status}`);
  }
  return times;
}

async function main(): Promise<void> {
  const model = await modelPath();
  const worker = await startWorker(model, 1);
  const threads = worker.info["threads"] as number;
  const gpu = worker.info["gpu"];

  // in-process twin of the worker's generation loop: same model, device, threads, context and sampling
  const llama = await getLlama({ gpu: values.device === "cpu" ? false : "auto", build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const lm = await llama.loadModel({ modelPath: model, gpuLayers: (worker.info["gpu_layers"] as number) ?? 0 });
  const context = await lm.createContext({ contextSize: worker.info["context_size"] as number, sequences: 1, threads });
  const sequence = context.getSequence();
  const prompt: Token[] = [lm.tokens.bos as Token, ...lm.tokenize(PROMPT, true)];
  const inProcess = async (): Promise<number[]> => {
    await sequence.clearHistory();
    const times: number[] = [];
    let n = 0;
    for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      lm.detokenize([token], false);
      times.push(performance.now());
      if (++n >= TOKENS) break;
    }
    return times;
  };
  const op = { operation: "infer", prompt: PROMPT, temperature: 0, max_tokens: TOKENS, ignore_eos: true };
  await inProcess();
  await viaWorker(worker, op);
  const direct: number[] = [];
  const http: number[] = [];
  const directCpu: number[] = [];
  const httpCpu: number[] = [];
  const pid = worker.child.pid as number;
  for (let r = 0; r < ROUNDS; r++) {
    let c0 = ownCpuSeconds();
    direct.push(decodeRate(await inProcess()));
    directCpu.push(((ownCpuSeconds() - c0) * 1000) / TOKENS);
    c0 = await cpuSeconds(pid);
    http.push(decodeRate(await viaWorker(worker, op)));
    httpCpu.push(((await cpuSeconds(pid)) - c0) * 1000 / TOKENS);
  }
  await context.dispose();
  await llama.dispose();
  worker.child.kill("SIGTERM");

  // aggregate throughput of JOBS concurrent jobs, --parallel JOBS against --parallel 1
  const aggregate = async (parallel: number): Promise<{ tps: number; cpuMsPerToken: number }> => {
    const w = await startWorker(model, parallel);
    try {
      const jobOp = (seed: number) => ({ operation: "infer", prompt: PROMPT, temperature: 0.7, seed, max_tokens: JOB_TOKENS, ignore_eos: true });
      await viaWorker(w, jobOp(0));
      const tps: number[] = [];
      const cpu: number[] = [];
      for (let r = 0; r < Math.max(1, Math.ceil(ROUNDS / 2)); r++) {
        const c0 = await cpuSeconds(w.child.pid as number);
        const began = performance.now();
        const counts = await Promise.all(Array.from({ length: JOBS }, (_, i) => viaWorker(w, jobOp(r * JOBS + i + 1)).then((t) => t.length)));
        const total = counts.reduce((a, b) => a + b, 0);
        tps.push((total * 1000) / (performance.now() - began));
        cpu.push((((await cpuSeconds(w.child.pid as number)) - c0) * 1000) / total);
      }
      return { tps: median(tps), cpuMsPerToken: median(cpu) };
    } finally {
      w.child.kill("SIGTERM");
    }
  };
  const serial = await aggregate(1);
  const batched = await aggregate(JOBS);

  const result = {
    model: path.basename(model),
    model_bytes: (await stat(model)).size,
    gpu,
    threads,
    load_average: (await readFile("/proc/loadavg", "utf8").catch(() => "")).split(" ")[0],
    decode: {
      tokens: TOKENS,
      rounds: ROUNDS,
      in_process_tps: median(direct),
      worker_http_tps: median(http),
      ratio: median(http) / median(direct),
      in_process_cpu_ms_per_token: median(directCpu),
      worker_cpu_ms_per_token: median(httpCpu),
      cpu_ratio: median(directCpu) / median(httpCpu),
    },
    parallel: {
      jobs: JOBS,
      job_tokens: JOB_TOKENS,
      parallel_1_tps: serial.tps,
      [`parallel_${JOBS}_tps`]: batched.tps,
      speedup: batched.tps / serial.tps,
      parallel_1_cpu_ms_per_token: serial.cpuMsPerToken,
      [`parallel_${JOBS}_cpu_ms_per_token`]: batched.cpuMsPerToken,
      cpu_speedup: serial.cpuMsPerToken / batched.cpuMsPerToken,
    },
  };
  const f = (n: number) => n.toFixed(1).padStart(9);
  const d = result.decode;
  console.log(`model ${result.model} (${(result.model_bytes / 2 ** 20).toFixed(0)} MiB), gpu ${String(gpu)}, threads ${threads}, load average ${result.load_average}`);
  console.log(`decode ${TOKENS} tokens, median of ${ROUNDS}       tokens/s   CPU ms/token`);
  console.log(`  in-process node-llama-cpp     ${f(d.in_process_tps)}  ${f(d.in_process_cpu_ms_per_token)}`);
  console.log(`  worker over HTTP (SSE)        ${f(d.worker_http_tps)}  ${f(d.worker_cpu_ms_per_token)}   ratio ${d.ratio.toFixed(3)} (CPU ${d.cpu_ratio.toFixed(3)})`);
  console.log(`${JOBS} concurrent jobs x ${JOB_TOKENS} tokens      tokens/s   CPU ms/token`);
  console.log(`  --parallel 1                  ${f(serial.tps)}  ${f(serial.cpuMsPerToken)}`);
  console.log(`  --parallel ${JOBS}                  ${f(batched.tps)}  ${f(batched.cpuMsPerToken)}   speedup ${result.parallel.speedup.toFixed(2)}x (CPU ${result.parallel.cpu_speedup.toFixed(2)}x)`);
  console.log(JSON.stringify(result));
}

await main();
