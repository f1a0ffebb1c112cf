/**
 * Decode and prompt speed of node-llama-cpp on rbee-tiny and the ~100M preset, by CPU thread count.
 * Run: node --import=tsx bench/threads.ts [--big] [--threads 1,2,4] [--tokens 200] [--prompt 256] [--max-threads N]
 * Models are written once into bench/.cache (ignored by git). node-llama-cpp never attaches a ggml threadpool, so
 * each llama_decode with N threads creates and joins N-1 threads and syncs them with spin barriers; on small or
 * busy machines threads > 1 is far slower than 1 (see the numbers this prints).
 */
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { RBEE_BENCH_100M, RBEE_TINY, RBEE_TINY_VERSION, writeTinyModel, type TinyModelOptions } from "../shared/rbee-tiny.js";

const { values } = parseArgs({
  options: {
    big: { type: "boolean", default: false },
    threads: { type: "string", default: "1,2,4" },
    tokens: { type: "string", default: "200" },
    prompt: { type: "string", default: "256" },
    "max-threads": { type: "string" },
  },
});
const cacheDir = path.join(import.meta.dirname, ".cache");
const threadCounts = values.threads.split(",").map(Number);
const decodeTokens = Number(values.tokens);
const promptTokens = Number(values.prompt);

async function modelFile(name: string, options: TinyModelOptions): Promise<string> {
  const file = path.join(cacheDir, `${name}-v${RBEE_TINY_VERSION}.gguf`);
  const exists = await stat(file).then(() => true, () => false);
  if (!exists) {
    await mkdir(cacheDir, { recursive: true });
    const t0 = performance.now();
    await writeTinyModel(file, options);
    console.log(`wrote ${file} in ${(performance.now() - t0).toFixed(0)} ms`);
  }
  return file;
}

const llama = await getLlama({
  gpu: false,
  build: "never",
  logLevel: LlamaLogLevel.error,
  ...(values["max-threads"] !== undefined ? { maxThreads: Number(values["max-threads"]) } : {}),
});
console.log(`cores: ${availableParallelism()}, cpuMathCores: ${llama.cpuMathCores}, llama.maxThreads: ${llama.maxThreads}`);

// THREADS_DEBUG=1 lists this process's threads (state:cpu ticks) after each run, to spot threads left spinning
async function procThreads(): Promise<string> {
  const tasks = await readdir("/proc/self/task");
  const states: string[] = [];
  for (const t of tasks) {
    const st = await readFile(`/proc/self/task/${t}/stat`, "utf8").catch(() => "");
    const fields = st.slice(st.lastIndexOf(")") + 2).split(" ");
    states.push(`${st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"))}:${fields[0]}:${Number(fields[11]) + Number(fields[12])}`);
  }
  return `${tasks.length} threads [${states.join(" ")}]`;
}
async function measure(model: LlamaModel, threads: number): Promise<string> {
  const context = await model.createContext({ contextSize: 1024, threads, batchSize: 512 });
  try {
    const sequence = context.getSequence();
    const words = model.tokenize(" the bee and the honey in the hive of the queen");
    const prompt: Token[] = [];
    while (prompt.length < promptTokens) prompt.push(...words);
    prompt.length = promptTokens;
    // warm-up, then a timed prompt evaluation
    await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16));
    await sequence.clearHistory();
    let t0 = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt);
    const promptMs = performance.now() - t0;
    await sequence.clearHistory();
    // decode: time per generated token after the first (which includes the prompt)
    let n = 0;
    let first = 0;
    let cpu = process.cpuUsage();
    t0 = performance.now();
    for await (const _token of sequence.evaluate(prompt.slice(0, 8), { temperature: 0 })) {
      if (n === 0) {
        first = performance.now();
        cpu = process.cpuUsage();
      }
      if (++n > decodeTokens) break;
    }
    const perToken = (performance.now() - first) / decodeTokens;
    const used = process.cpuUsage(cpu);
    const cpuPerToken = (used.user + used.system) / 1000 / decodeTokens;
    return (
      `threads ${threads} (actual ${context.currentThreads}): decode ${perToken.toFixed(2)} ms/token ` +
      `(${(1000 / perToken).toFixed(0)} tok/s, cpu ${cpuPerToken.toFixed(2)} ms/token), prompt ${promptTokens} tokens ${promptMs.toFixed(0)} ms ` +
      `(${((promptTokens / promptMs) * 1000).toFixed(0)} tok/s)`
    );
  } finally {
    await context.dispose();
  }
}

const models: [string, TinyModelOptions][] = [["rbee-tiny", RBEE_TINY]];
if (values.big) {
  models.push(["rbee-bench-100m-f16", RBEE_BENCH_100M], ["rbee-bench-100m-q8_0", { ...RBEE_BENCH_100M, tensorType: "Q8_0" }]);
}
for (const [name, options] of models) {
  const file = await modelFile(name, options);
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file });
  console.log(`${name}: load ${(performance.now() - t0).toFixed(0)} ms, ${(model.size / 2 ** 20).toFixed(1)} MiB`);
  for (const threads of threadCounts) {
    console.log(`  ${await measure(model, threads)}`);
    if (process.env.THREADS_DEBUG) console.log(`    ${await procThreads()}`);
  }
  await model.dispose();
}
await llama.dispose();
