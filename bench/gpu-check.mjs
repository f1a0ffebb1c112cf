// GPU offload check for llm-worker-rbee, run by bench/gpu-check.sh on a GPU machine (plain JS: no tsx there).
// Starts the built worker with --gpu-layers max on the GPU, requires gpu "cuda" and every layer offloaded, then
// compares decode tokens/s (and 8 concurrent jobs on --parallel 8) with the same model on --device cpu.
// Prints a table and one JSON line; exits 1 when offload is not proven.
import { spawn } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { JobClient } from "../dist/shared/job-client.js";
import { RBEE_BENCH_100M, writeTinyModel } from "../dist/shared/rbee-tiny.js";

const ROOT = new URL("..", import.meta.url).pathname;
const TOKENS = Number(process.env.GPU_CHECK_TOKENS ?? 256);
const PROMPT = "the bee and the honey in the hive of the queen";

async function model() {
  const file = join(ROOT, "bench/.cache/rbee-bench-100m-f16.gguf");
  if (!(await stat(file).catch(() => undefined))) {
    await mkdir(join(ROOT, "bench/.cache"), { recursive: true });
    await writeTinyModel(file, RBEE_BENCH_100M);
  }
  return file;
}

async function startWorker(args) {
  const child = spawn(process.execPath, [join(ROOT, "dist/daemons/worker/main.js"), "--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (l) => l.startsWith("listening ") && resolve(l.slice(10)));
    child.once("exit", (code) => reject(new Error(`worker exited ${code}`)));
  });
  const client = new JobClient(url, { label: "worker" });
  const { load_job_id } = await client.getJson("/v1/info");
  const narration = [];
  let end;
  for await (const e of client.stream(load_job_id)) {
    if (e.event === "narration") narration.push(`  [${e.data.level}] ${e.data.human}`);
    if (e.event === "end") end = e.data;
  }
  console.log(narration.join("\n"));
  if (end?.status !== "completed") {
    child.kill();
    throw new Error(`load ${end?.status}: ${end?.error?.code} ${end?.error?.message}`);
  }
  return { client, child, info: await client.getJson("/v1/info") };
}

async function decode(client, op) {
  const { job_id } = await client.create(op);
  const times = [];
  for await (const e of client.stream(job_id)) {
    if (e.event === "token") times.push(performance.now());
    if (e.event === "end" && e.data.status !== "completed") throw new Error(`job ended ${e.data.status}: ${e.data.error?.message}`);
  }
  return times.length > 1 ? ((times.length - 1) * 1000) / (times.at(-1) - times[0]) : 0;
}

async function measure(args) {
  const w = await startWorker(args);
  try {
    const op = { operation: "infer", prompt: PROMPT, temperature: 0, max_tokens: TOKENS, ignore_eos: true };
    await decode(w.client, { ...op, max_tokens: 16 });
    const rates = [];
    for (let i = 0; i < 3; i++) rates.push(await decode(w.client, op));
    return { info: w.info, tps: rates.sort((a, b) => a - b)[1] };
  } finally {
    w.child.kill("SIGTERM");
  }
}

async function aggregate(args, jobs) {
  const w = await startWorker(args);
  try {
    const began = performance.now();
    const ops = Array.from({ length: jobs }, (_, i) => ({ operation: "infer", prompt: PROMPT, temperature: 0.7, seed: i + 1, max_tokens: 128, ignore_eos: true }));
    await Promise.all(ops.map((op) => decode(w.client, op)));
    return (jobs * 128 * 1000) / (performance.now() - began);
  } finally {
    w.child.kill("SIGTERM");
  }
}

const path = await model();
const common = ["--model", path, "--context-size", "1024"];
console.log("GPU worker (--gpu-layers max):");
const gpu = await measure([...common, "--device", "auto", "--gpu-layers", "max"]);
const offloaded = gpu.info.gpu === "cuda" && gpu.info.gpu_layers === gpu.info.total_layers && gpu.info.total_layers > 0;
console.log("CPU worker (--device cpu):");
const cpu = await measure([...common, "--device", "cpu"]);
const gpuParallel = await aggregate([...common, "--device", "auto", "--gpu-layers", "max", "--parallel", "8"], 8);
const gpuSerial = await aggregate([...common, "--device", "auto", "--gpu-layers", "max", "--parallel", "1"], 8);

const result = {
  model: "rbee-bench-100m",
  gpu: gpu.info.gpu,
  gpu_layers: gpu.info.gpu_layers,
  total_layers: gpu.info.total_layers,
  vram_bytes: gpu.info.memory?.vram_bytes,
  offloaded,
  gpu_tps: gpu.tps,
  cpu_tps: cpu.tps,
  cpu_threads: cpu.info.threads,
  speedup: gpu.tps / cpu.tps,
  gpu_8_jobs_parallel_8_tps: gpuParallel,
  gpu_8_jobs_parallel_1_tps: gpuSerial,
};
console.log(`offload: gpu ${result.gpu}, ${result.gpu_layers} of ${result.total_layers} layers -> ${offloaded ? "OK" : "NOT PROVEN"}`);
console.log(`decode ${TOKENS} tokens: GPU ${gpu.tps.toFixed(1)} tok/s, CPU (${cpu.info.threads} threads) ${cpu.tps.toFixed(1)} tok/s, x${result.speedup.toFixed(1)}`);
console.log(`8 jobs on the GPU: --parallel 8 ${gpuParallel.toFixed(1)} tok/s, --parallel 1 ${gpuSerial.toFixed(1)} tok/s`);
console.log(JSON.stringify(result));
process.exit(offloaded ? 0 : 1);
