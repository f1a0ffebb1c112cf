/**
 * The peer: llama.cpp's own llama-server, built from the exact llama.cpp source node-llama-cpp ships (the head of
 * node_modules/node-llama-cpp/llama/gitRelease.bundle), into a cache outside the repository
 * (~/.cache/rbee-bench, or RBEE_BENCH_CACHE). Started on the same GGUF with the same threads, and asked through
 * `/completion` with `stream: true`, timed at the client like rbee's paths.
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, open, readFile, rm, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import type { InferSample } from "./infer.js";
import { llamaCppCommit } from "./machine.js";
import { alive, freePort, spawnTracked, stopPid, waitForLine } from "./proc.js";
import { decodeRate, sleep } from "./stats.js";

const run = promisify(execFile);

export const CACHE_DIR = process.env["RBEE_BENCH_CACHE"] ?? path.join(homedir(), ".cache", "rbee-bench");

export interface PeerBinary {
  ok: boolean;
  /** the llama-server binary, when ok */
  binary?: string;
  /** why there is no peer, when not ok; how it was obtained, when ok */
  note: string;
  build_seconds?: number;
  flags: string;
}

const BUILD_FLAGS = ["-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"];

async function commandExists(cmd: string): Promise<boolean> {
  return run("sh", ["-c", `command -v ${cmd}`]).then(() => true, () => false);
}

/** Runs a command with its output appended to `log`; rejects on a non-zero exit. */
function logged(cmd: string, args: string[], cwd: string, log: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(log, { flags: "a" });
    out.write(`\n$ ${cmd} ${args.join(" ")}\n`);
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.once("error", reject);
    child.once("close", (code) => {
      out.end();
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")} ... exited ${code} (see ${log})`));
    });
  });
}

/**
 * Finds or builds llama-server. Source, in order: the cache, a checkout of the same commit at /tmp/llamacpp
 * (copied), a clone of node-llama-cpp's git bundle. Only the `llama-server` target is built. `allowBuild: false`
 * returns "not built" instead of building.
 */
export async function ensurePeer(opts: { root: string; allowBuild: boolean; log: (line: string) => void }): Promise<PeerBinary> {
  const commit = await llamaCppCommit();
  const flags = BUILD_FLAGS.join(" ");
  if (commit === "unknown") return { ok: false, note: "the llama.cpp commit of node-llama-cpp could not be read (git bundle list-heads failed)", flags };
  const src = path.join(CACHE_DIR, `llama.cpp-${commit}`);
  const binary = path.join(src, "build", "bin", "llama-server");
  if (existsSync(binary)) return { ok: true, binary, note: `cached build at ${binary}`, flags };
  if (!opts.allowBuild) return { ok: false, note: "not built (skipped by --quick or --no-peer-build); a full `npm run bench` builds it once into the cache", flags };
  for (const tool of ["cmake", "c++", "git"]) {
    if (!(await commandExists(tool))) return { ok: false, note: `cannot build llama-server: \`${tool}\` is not installed`, flags };
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const lock = path.join(CACHE_DIR, "llama-server-build.lock");
  const log = path.join(CACHE_DIR, "llama-server-build.log");
  // another bench run building at the same time: wait for it
  const other = Number((await readFile(lock, "utf8").catch(() => "")).trim());
  if (other > 0 && alive(other)) {
    opts.log(`waiting for the llama-server build of pid ${other} (log ${log})`);
    while (alive(other)) await sleep(5000);
    if (existsSync(binary)) return { ok: true, binary, note: `built by a concurrent run at ${binary}`, flags };
  }
  const handle = await open(lock, "w");
  await handle.writeFile(`${process.pid}\n`);
  await handle.close();
  const began = performance.now();
  try {
    if (!existsSync(path.join(src, "CMakeLists.txt"))) {
      await rm(src, { recursive: true, force: true });
      const local = "/tmp/llamacpp";
      const localHead = await run("git", ["-C", local, "rev-parse", "HEAD"]).then((r) => r.stdout.trim(), () => "");
      if (localHead === commit) {
        opts.log(`copying the llama.cpp source at ${local} (commit ${commit.slice(0, 10)}) into ${src}`);
        await mkdir(src, { recursive: true });
        await run("sh", ["-c", `tar -C '${local}' --exclude=./build --exclude=./.git -cf - . | tar -C '${src}' -xf -`], { maxBuffer: 1 << 20 });
      } else {
        const bundle = path.join(opts.root, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
        opts.log(`cloning llama.cpp ${commit.slice(0, 10)} from node-llama-cpp's git bundle into ${src}`);
        await logged("git", ["clone", "--quiet", bundle, src], CACHE_DIR, log);
        await logged("git", ["-C", src, "checkout", "--quiet", commit], CACHE_DIR, log);
      }
    }
    const generator = (await commandExists("ninja")) ? ["-G", "Ninja"] : [];
    opts.log(`building llama-server (${flags}); log ${log}; about 15 minutes on 2 cores`);
    await logged("cmake", ["-S", ".", "-B", "build", ...generator, ...BUILD_FLAGS], src, log);
    const jobs = String(Math.max(2, Math.min(8, (await import("node:os")).availableParallelism())));
    await logged("cmake", ["--build", "build", "--target", "llama-server", "-j", jobs], src, log);
    if (!existsSync(binary)) return { ok: false, note: `the build finished but ${binary} is missing (see ${log})`, flags };
    const seconds = Math.round((performance.now() - began) / 1000);
    return { ok: true, binary, note: `built in this run (${seconds} s) at ${binary}`, build_seconds: seconds, flags };
  } catch (err) {
    return { ok: false, note: `llama-server could not be built: ${(err as Error).message}`, flags };
  } finally {
    await unlink(lock).catch(() => {});
  }
}

export interface PeerServer {
  url: string;
  pid: number;
  args: string[];
  stop(): Promise<void>;
}

let helpText: string | undefined;
async function serverHelp(binary: string): Promise<string> {
  helpText ??= await run(binary, ["--help"], { maxBuffer: 4 << 20, env: libEnv(binary) }).then((r) => r.stdout + r.stderr, (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}`);
  return helpText;
}

function libEnv(binary: string): NodeJS.ProcessEnv {
  const dir = path.dirname(binary);
  return { ...process.env, LD_LIBRARY_PATH: [dir, process.env["LD_LIBRARY_PATH"]].filter(Boolean).join(":") };
}

/** llama-server on a free port: `-t/-tb threads`, `-np parallel`, `-c contextPerSlot * parallel` (each slot the worker's context). */
export async function startPeer(binary: string, model: string, threads: number, parallel: number, contextPerSlot: number): Promise<PeerServer> {
  const help = await serverHelp(binary);
  const args = ["-m", model, "--host", "127.0.0.1", "--port", "0", "-t", String(threads), "-tb", String(threads), "-np", String(parallel), "-c", String(contextPerSlot * parallel), "-ngl", "0"];
  // one KV cache per slot like node-llama-cpp's sequences, where this llama-server has the switch
  if (/--no-kv-unified\b/.test(help)) args.push("--no-kv-unified");
  if (/--no-webui[,\s]/.test(help)) args.push("--no-webui");
  // --port 0 is not honoured by every llama-server: pick a free port ourselves
  const port = await freePort();
  args[args.indexOf("--port") + 1] = String(port);
  const child = spawnTracked(binary, args, { env: libEnv(binary), stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid ?? 0;
  let log = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (log = (log + d).slice(-4000)));
  child.stdout?.resume();
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama-server exited ${child.exitCode}: ${log.slice(-1000)}`);
    const ok = await request(`${url}/health`).then(async (r) => (await r.body.text(), r.statusCode === 200), () => false);
    if (ok) break;
    if (Date.now() > until) {
      await stopPid(pid);
      throw new Error(`llama-server did not become healthy: ${log.slice(-1000)}`);
    }
    await sleep(100);
  }
  return { url, pid, args, stop: () => stopPid(pid) };
}


export interface PeerSample extends InferSample {
  /** llama-server's own decode rate (timings.predicted_per_second) */
  serverTokensPerS: number;
}

/** One `/completion` with `stream: true`: TTFT from the POST to the first token chunk, decode rate from arrivals. */
export async function peerCompletion(url: string, prompt: string, maxTokens: number, seed = 42, temperature = 0): Promise<PeerSample> {
  const began = performance.now();
  const res = await request(`${url}/completion`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, n_predict: maxTokens, ignore_eos: true, temperature, seed, stream: true, cache_prompt: true }),
  });
  if (res.statusCode !== 200) throw new Error(`llama-server /completion answered ${res.statusCode}: ${await res.body.text()}`);
  const times: number[] = [];
  let buf = "";
  let serverTps = Number.NaN;
  let predicted = 0;
  for await (const chunk of res.body) {
    buf += (chunk as Buffer).toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith("data:")) continue;
      const body = line.slice(5).trim();
      if (body === "[DONE]") continue;
      const d = JSON.parse(body) as { content?: string; tokens?: number[]; stop?: boolean; timings?: { predicted_per_second?: number; predicted_n?: number } };
      if (!d.stop) times.push(performance.now());
      if (d.timings) {
        serverTps = d.timings.predicted_per_second ?? Number.NaN;
        predicted = d.timings.predicted_n ?? predicted;
      }
    }
  }
  return { ttftMs: (times[0] ?? Number.NaN) - began, tokensPerS: decodeRate(times), tokens: Math.max(predicted, times.length), totalMs: performance.now() - began, serverTokensPerS: serverTps };
}
