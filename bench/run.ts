/**
 * `npm run bench`: every benchmark of the project on the machine at hand, written to bench/RESULTS.md,
 * bench/results.json and bench/README-section.md, which it also writes into README.md between its bench markers.
 *
 *   npm run bench                 full run: rbee-tiny and the ~100M preset, the llama-server peer (built once into
 *                                 ~/.cache/rbee-bench when missing), 7 rounds per figure
 *   npm run bench -- --quick      short run: 3 rounds, rbee-tiny only, no peer build (a cached peer is still used),
 *                                 lighter load figures
 *   options: --no-peer (skip the peer), --no-peer-build (use the peer only if cached), --only a,b (sections:
 *            startup, overhead, concurrency, peer, control, memory, load; for working on the benchmark itself),
 *            --render (rewrite the Markdown from bench/results.json without measuring)
 * A part that fails is listed in RESULTS.md and makes the exit status 1; the other parts still run.
 *
 * Every figure is a median of several runs next to its baseline measured in the same run, interleaved round by
 * round so a busy machine slows both alike. Everything the run starts it stops (by pid), also on Ctrl-C.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { JobEvent } from "../shared/protocol.js";
import { RBEE_BENCH_100M, RBEE_TINY_VERSION, writeTinyModel } from "../shared/rbee-tiny.js";
import { startCluster, type Cluster, type SpawnedWorker } from "./lib/cluster.js";
import { inferOp, inferViaCli, inferViaJobApi, KEEPER, type InferSample } from "./lib/infer.js";
import { InProcess } from "./lib/inprocess.js";
import { loadAverage, machineInfo, ROOT, versions } from "./lib/machine.js";
import { CACHE_DIR, ensurePeer, peerCompletion, startPeer, type PeerBinary } from "./lib/peer.js";
import { alive, cpuSeconds, freePort, installCleanup, rssMiB, stopPid, trackDir, trackPid, untrackDir } from "./lib/proc.js";
import { renderReadmeSection, renderResults, type Results } from "./lib/report.js";
import { median, p99, quantile, round } from "./lib/stats.js";
import { cleanEnv, timeOnce } from "./keeper.js";

const { values: argv } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "no-peer": { type: "boolean", default: false },
    "no-peer-build": { type: "boolean", default: false },
    only: { type: "string" },
    render: { type: "boolean", default: false },
  },
});
const QUICK = argv.quick;
const ONLY = argv.only ? new Set(argv.only.split(",").map((s) => s.trim())) : undefined;
const want = (section: string): boolean => ONLY === undefined || ONLY.has(section);

const PROMPT = "the bee and the honey in the hive of the queen";
const CFG = {
  rounds: QUICK ? 3 : 7,
  startupRounds: QUICK ? 3 : 9,
  coldRounds: QUICK ? 2 : 5,
  levels: [1, 4, 8, 16, 32],
  concurrencyRounds: QUICK ? 1 : 3,
  statusSeconds: QUICK ? 1 : 2,
  statusSlices: QUICK ? 3 : 5,
  statusConcurrentJobs: QUICK ? 500 : 1000,
  fanoutRounds: QUICK ? 3 : 5,
  fanoutSubscribers: 64,
  peerRounds: QUICK ? 3 : 5,
  peerParallelRounds: QUICK ? 2 : 3,
};

interface ModelCase {
  /** catalog id */
  id: string;
  label: string;
  /** tokens per single-stream infer */
  tokens: number;
  /** tokens per request in the concurrency runs */
  concurrencyTokens: number;
  concurrencyRounds: number;
  /** the GGUF on disk (rbee-tiny's is the hive's own, known once a worker has it) */
  file?: string;
  tensorType: string;
}

const log = (line: string): void => {
  const t = ((performance.now() - T0) / 1000).toFixed(0).padStart(5);
  process.stderr.write(`[bench ${t}s] ${line}\n`);
};
const T0 = performance.now();

/** The ~100M preset as Q8_0, written once into the cache. */
async function bench100mFile(): Promise<string> {
  const file = path.join(CACHE_DIR, `rbee-bench-100m-q8_0-v${RBEE_TINY_VERSION}.gguf`);
  if (!existsSync(file)) {
    await mkdir(CACHE_DIR, { recursive: true });
    log(`writing the ~100M preset (Q8_0) to ${file}`);
    await writeTinyModel(file, { ...RBEE_BENCH_100M, tensorType: "Q8_0" });
  }
  return file;
}

async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size;
}

// ---- sections ---------------------------------------------------------------------------------------------

/** Overhead per hop: in-process, worker, hive, queen, `rbee infer --json`, interleaved round by round. */
async function overhead(cluster: Cluster, worker: SpawnedWorker, m: ModelCase): Promise<Results["overhead"][string]> {
  const file = m.file!;
  log(`overhead ${m.id}: in-process twin (${worker.threads} threads, context ${worker.context_size}), ${m.tokens} tokens, ${CFG.rounds} rounds`);
  const twin = await InProcess.load(file, worker.threads, worker.context_size);
  const req = { prompt: PROMPT, model: m.id, maxTokens: m.tokens, workerId: worker.worker_id };
  const op = inferOp(req);
  const cliEnv = cleanEnv({ RBEE_QUEEN_URL: cluster.queenUrl, RBEE_HOME: cluster.home });
  const paths: Array<[string, () => Promise<InferSample>]> = [
    ["in-process (node-llama-cpp)", () => twin.infer(PROMPT, m.tokens)],
    ["worker (1 hop)", () => inferViaJobApi(worker.client, op)],
    ["hive -> worker (2 hops)", () => inferViaJobApi(cluster.hive, op)],
    ["queen -> hive -> worker (3 hops)", () => inferViaJobApi(cluster.queen, op)],
    ["rbee infer --json (CLI process)", () => inferViaCli(req, cliEnv)],
  ];
  const samples = paths.map(() => [] as InferSample[]);
  // CPU time each process spends per token on each path (summed over the rounds): robust on a busy machine
  const tiers = { worker: worker.pid, hive: cluster.hivePid, queen: cluster.queenPid };
  const cpu = paths.map(() => ({ worker: 0, hive: 0, queen: 0, client: 0, tokens: 0 }));
  const cpuNow = async (): Promise<{ worker: number; hive: number; queen: number; client: number }> => {
    const u = process.cpuUsage();
    return { worker: await cpuSeconds(tiers.worker), hive: await cpuSeconds(tiers.hive), queen: await cpuSeconds(tiers.queen), client: (u.user + u.system) / 1e6 };
  };
  try {
    for (const [, f] of paths) await f(); // warm-up: prompt cached in the slot, connections open
    for (let r = 0; r < CFG.rounds; r++) {
      for (const [k, [, f]] of paths.entries()) {
        const c0 = await cpuNow();
        const s = await f();
        const c1 = await cpuNow();
        samples[k]!.push(s);
        const acc = cpu[k]!;
        acc.worker += c1.worker - c0.worker;
        acc.hive += c1.hive - c0.hive;
        acc.queen += c1.queen - c0.queen;
        acc.client += c1.client - c0.client;
        acc.tokens += s.tokens;
      }
    }
  } finally {
    await twin.dispose();
  }
  const base = samples[0]!;
  const baseTps = median(base.map((s) => s.tokensPerS));
  const baseTtft = median(base.map((s) => s.ttftMs));
  return {
    tokens: m.tokens,
    rounds: CFG.rounds,
    threads: worker.threads,
    rows: paths.map(([name], k) => {
      const s = samples[k]!;
      const tps = median(s.map((x) => x.tokensPerS));
      const ttft = median(s.map((x) => x.ttftMs));
      return {
        path: name,
        tokens_per_s: round(tps),
        ttft_ms: round(ttft, 2),
        ttft_p90_ms: round(quantile(s.map((x) => x.ttftMs), 0.9), 2),
        ratio_tokens_per_s: round(tps / baseTps, 3),
        added_ttft_ms: round(ttft - baseTtft, 2),
        tokens_per_s_samples: s.map((x) => round(x.tokensPerS)),
        cpu_ms_per_token: perToken(cpu[k]!, name),
      };
    }),
  };
}

/** CPU ms per token by process; tiers a path does not touch are left out (the CLI process itself is not read). */
function perToken(c: { worker: number; hive: number; queen: number; client: number; tokens: number }, name: string): Record<string, number> {
  const ms = (s: number): number => round((s * 1000) / Math.max(1, c.tokens), 3);
  if (name.startsWith("in-process")) return { in_process: ms(c.client) };
  const out: Record<string, number> = { worker: ms(c.worker) };
  if (!name.startsWith("worker")) out["hive"] = ms(c.hive);
  if (name.startsWith("queen") || name.startsWith("rbee")) out["queen"] = ms(c.queen);
  if (!name.startsWith("rbee")) out["client"] = ms(c.client);
  return out;
}

/** N concurrent infers through the queen onto one pinned worker. */
async function concurrentBatch(cluster: Cluster, worker: SpawnedWorker, m: ModelCase, n: number): Promise<{ tps: number; ttfts: number[] }> {
  const began = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => inferViaJobApi(cluster.queen, inferOp({ prompt: PROMPT, model: m.id, maxTokens: m.concurrencyTokens, workerId: worker.worker_id, seed: i }))),
  );
  const wall = performance.now() - began;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  return { tps: (tokens * 1000) / wall, ttfts: results.map((r) => r.ttftMs) };
}

async function concurrency(cluster: Cluster, worker: SpawnedWorker, m: ModelCase): Promise<Results["concurrency"][string]["rows"]> {
  log(`concurrency ${m.id}: worker --parallel ${worker.parallel}, levels ${CFG.levels.join(",")}, ${m.concurrencyTokens} tokens, ${m.concurrencyRounds} round(s)`);
  await concurrentBatch(cluster, worker, m, Math.min(worker.parallel, 8)); // warm-up
  const rows: Results["concurrency"][string]["rows"] = [];
  for (const n of CFG.levels) {
    const tps: number[] = [];
    const ttfts: number[] = [];
    for (let r = 0; r < m.concurrencyRounds; r++) {
      const b = await concurrentBatch(cluster, worker, m, n);
      tps.push(b.tps);
      ttfts.push(...b.ttfts);
    }
    rows.push({ parallel: worker.parallel, concurrent: n, tokens_per_s: round(median(tps)), ttft_p50_ms: round(median(ttfts), 1), ttft_p99_ms: round(p99(ttfts), 1), ratio: Number.NaN });
  }
  return rows;
}

interface PeerComparison {
  parallel: number;
  concurrent: number;
  tokens: number;
  peer_tokens_per_s: number;
  peer_server_tokens_per_s: number;
  rbee_tokens_per_s: number;
  in_process_tokens_per_s: number;
  ratio: number;
  peer_ttft_ms: number;
  rbee_ttft_ms: number;
  peer_args: string;
}

/** llama-server against rbee through the queen, same model/threads/prompt/tokens, interleaved. */
async function peerVersus(bin: string, cluster: Cluster, worker: SpawnedWorker, m: ModelCase, concurrent: number, tokens: number, rounds: number): Promise<PeerComparison> {
  log(`peer ${m.id}: llama-server -np ${worker.parallel}, ${concurrent} concurrent, ${tokens} tokens, ${rounds} rounds`);
  const server = await startPeer(bin, m.file!, worker.threads, worker.parallel, worker.context_size);
  // node-llama-cpp on its own, one sequence per request like the worker's slots: what the library does without rbee
  const twin = await InProcess.load(m.file!, worker.threads, worker.context_size, worker.parallel);
  try {
    const peerBatch = async (): Promise<{ tps: number; server: number; ttft: number[] }> => {
      const began = performance.now();
      const rs = await Promise.all(Array.from({ length: concurrent }, (_, i) => peerCompletion(server.url, PROMPT, tokens, i)));
      const wall = performance.now() - began;
      const total = rs.reduce((a, r) => a + r.tokens, 0);
      return { tps: concurrent === 1 ? rs[0]!.tokensPerS : (total * 1000) / wall, server: median(rs.map((r) => r.serverTokensPerS)), ttft: rs.map((r) => r.ttftMs) };
    };
    const rbeeBatch = async (): Promise<{ tps: number; ttft: number[] }> => {
      const began = performance.now();
      const rs = await Promise.all(Array.from({ length: concurrent }, (_, i) => inferViaJobApi(cluster.queen, inferOp({ prompt: PROMPT, model: m.id, maxTokens: tokens, workerId: worker.worker_id, seed: i }))));
      const wall = performance.now() - began;
      const total = rs.reduce((a, r) => a + r.tokens, 0);
      return { tps: concurrent === 1 ? rs[0]!.tokensPerS : (total * 1000) / wall, ttft: rs.map((r) => r.ttftMs) };
    };
    const twinBatch = async (): Promise<{ tps: number; ttft: number[] }> => {
      if (concurrent > 1) {
        const b = await twin.inferMany(concurrent, PROMPT, tokens);
        return { tps: b.tps, ttft: b.ttfts };
      }
      const r = await twin.infer(PROMPT, tokens);
      return { tps: r.tokensPerS, ttft: [r.ttftMs] };
    };
    await peerBatch();
    await rbeeBatch();
    await twinBatch();
    const peer: Array<{ tps: number; server: number; ttft: number[] }> = [];
    const rbee: Array<{ tps: number; ttft: number[] }> = [];
    const inproc: Array<{ tps: number; ttft: number[] }> = [];
    for (let r = 0; r < rounds; r++) {
      peer.push(await peerBatch());
      rbee.push(await rbeeBatch());
      inproc.push(await twinBatch());
    }
    const peerTps = median(peer.map((x) => x.tps));
    const rbeeTps = median(rbee.map((x) => x.tps));
    return {
      parallel: worker.parallel,
      concurrent,
      tokens,
      peer_tokens_per_s: round(peerTps),
      peer_server_tokens_per_s: round(median(peer.map((x) => x.server))),
      rbee_tokens_per_s: round(rbeeTps),
      in_process_tokens_per_s: round(median(inproc.map((x) => x.tps))),
      ratio: round(rbeeTps / peerTps, 3),
      peer_ttft_ms: round(median(peer.flatMap((x) => x.ttft)), 2),
      rbee_ttft_ms: round(median(rbee.flatMap((x) => x.ttft)), 2),
      peer_args: `llama-server ${server.args.map((a, i, all) => (a === m.file ? "<gguf>" : all[i - 1] === "--port" ? "<port>" : a)).join(" ")}`,
    };
  } finally {
    await server.stop();
    await twin.dispose();
  }
}

/** `status` jobs one at a time (latency) and 50 in flight (throughput); SSE fan-out of one infer job to 64 subscribers. */
async function controlPlane(cluster: Cluster, worker: SpawnedWorker): Promise<Results["control"]> {
  const q = cluster.queen;
  const statusOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const { job_id } = await q.create({ operation: "status" });
    for await (const e of q.stream(job_id)) if (e.event === "end" && e.data.status !== "completed") throw new Error(`status ended ${e.data.status}`);
    return performance.now() - t0;
  };
  log(`control plane: status one at a time, ${CFG.statusSlices} x ${CFG.statusSeconds} s`);
  for (let i = 0; i < 50; i++) await statusOnce();
  const rates: number[] = [];
  const lat: number[] = [];
  for (let s = 0; s < CFG.statusSlices; s++) {
    const began = performance.now();
    let n = 0;
    while (performance.now() - began < CFG.statusSeconds * 1000) {
      lat.push(await statusOnce());
      n++;
    }
    rates.push((n * 1000) / (performance.now() - began));
  }
  log(`control plane: ${CFG.statusConcurrentJobs} status jobs, 50 in flight`);
  const concLat: number[] = [];
  let next = 0;
  const began = performance.now();
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < CFG.statusConcurrentJobs) {
      next++;
      concLat.push(await statusOnce());
    }
  }));
  const concSeconds = (performance.now() - began) / 1000;

  log(`control plane: SSE fan-out, one infer job (256 tokens), 1 and ${CFG.fanoutSubscribers} subscribers, ${CFG.fanoutRounds} rounds`);
  const fanout = async (subscribers: number): Promise<{ ms: number; events: number }> => {
    const t0 = performance.now();
    const { job_id } = await q.create(inferOp({ prompt: PROMPT, model: "rbee-tiny", maxTokens: 256, workerId: worker.worker_id }));
    const counts = await Promise.all(Array.from({ length: subscribers }, async () => {
      let n = 0;
      let ended = false;
      for await (const e of q.stream(job_id) as AsyncGenerator<JobEvent>) {
        n++;
        if (e.event === "end") ended = true;
      }
      if (!ended) throw new Error("a fan-out subscriber missed end");
      return n;
    }));
    return { ms: performance.now() - t0, events: counts.reduce((a, b) => a + b, 0) };
  };
  await fanout(1);
  await fanout(CFG.fanoutSubscribers);
  const one: Array<{ ms: number; events: number }> = [];
  const many: Array<{ ms: number; events: number }> = [];
  for (let r = 0; r < CFG.fanoutRounds; r++) {
    one.push(await fanout(1));
    many.push(await fanout(CFG.fanoutSubscribers));
  }
  const oneMs = median(one.map((x) => x.ms));
  const manyMs = median(many.map((x) => x.ms));
  return {
    status_sequential: { jobs_per_s: round(median(rates)), p50_ms: round(median(lat), 2), p99_ms: round(p99(lat), 2), jobs: lat.length },
    status_concurrent: { concurrency: 50, jobs: CFG.statusConcurrentJobs, jobs_per_s: round(CFG.statusConcurrentJobs / concSeconds), p50_ms: round(median(concLat), 2), p99_ms: round(p99(concLat), 2) },
    fanout: {
      subscribers: CFG.fanoutSubscribers,
      events_per_stream: Math.round(median(many.map((x) => x.events)) / CFG.fanoutSubscribers),
      one_subscriber_ms: round(oneMs, 1),
      all_subscribers_ms: round(manyMs, 1),
      ratio: round(manyMs / oneMs, 2),
      events_per_s: round(median(many.map((x) => (x.events * 1000) / x.ms)), 0),
    },
  };
}

/** Cold `rbee infer` (fresh RBEE_HOME, no queen), warm `rbee infer`, `rbee --help`, against `node -e 0`. */
async function startup(warmQueenUrl: string | undefined): Promise<Results["startup"]> {
  log(`start-up: cold rbee infer x${CFG.coldRounds} (fresh RBEE_HOME each)`);
  const cold: Array<{ ttft: number; exit: number }> = [];
  for (let r = 0; r < CFG.coldRounds; r++) {
    const home = await mkdtemp(path.join(tmpdir(), "rbee-bench-cold-"));
    trackDir(home);
    const env = cleanEnv({ RBEE_HOME: home, RBEE_DEFAULT_QUEEN_PORT: String(await freePort()) });
    try {
      const s = await inferViaCli({ prompt: PROMPT, model: "rbee-tiny", maxTokens: 8 }, env);
      cold.push({ ttft: s.ttftMs, exit: s.exitMs });
    } finally {
      // the queen the keeper started (and its hive and worker): the pid files say who, `rbee queen stop` stops them
      const pids = await pidsUnder(path.join(home, "state"));
      for (const p of pids) trackPid(p);
      await timeOnce([KEEPER, "queen", "stop"], env).catch((e: Error) => log(`rbee queen stop: ${e.message}`));
      for (const p of pids) await stopPid(p, 5000);
      await rm(home, { recursive: true, force: true });
      untrackDir(home);
    }
  }
  const rounds = CFG.startupRounds;
  const keeperHome = await mkdtemp(path.join(tmpdir(), "rbee-bench-keeper-"));
  trackDir(keeperHome);
  const env = cleanEnv({ RBEE_HOME: keeperHome });
  const cases: Array<[string, string[], NodeJS.ProcessEnv]> = [
    ["node -e 0 (baseline)", ["-e", "0"], env],
    ["rbee --help", [KEEPER, "--help"], env],
  ];
  if (warmQueenUrl) cases.push(["rbee infer, warm (8 tokens)", [KEEPER, "infer", "--max-tokens", "8", "--ignore-eos", "--keep-alive", "-1", "--prompt", PROMPT], { ...env, RBEE_QUEEN_URL: warmQueenUrl }]);
  log(`start-up: ${cases.map((c) => c[0]).join(", ")}, ${rounds} rounds`);
  const samples = cases.map(() => [] as number[]);
  for (const [, args, e] of cases) await timeOnce(args, e);
  for (let r = 0; r < rounds; r++) for (const [k, [, args, e]] of cases.entries()) samples[k]!.push(await timeOnce(args, e));
  await rm(keeperHome, { recursive: true, force: true });
  untrackDir(keeperHome);
  const med = samples.map((s) => median(s));
  return {
    cold_rounds: cold.length,
    cold_ttft_ms: round(median(cold.map((c) => c.ttft)), 0),
    cold_ttft_max_ms: round(Math.max(...cold.map((c) => c.ttft)), 0),
    cold_exit_ms: round(median(cold.map((c) => c.exit)), 0),
    rounds,
    rows: cases.map(([name], k) => ({ name, ms: round(med[k]!, 1), over_node_ms: k === 0 ? Number.NaN : round(med[k]! - med[0]!, 1) })),
  };
}

async function pidsUnder(stateDir: string): Promise<number[]> {
  const names = await readdir(stateDir).catch(() => [] as string[]);
  const pids: number[] = [];
  for (const n of names.filter((x) => x.endsWith(".pid"))) {
    const pid = Number((await readFile(path.join(stateDir, n), "utf8").catch(() => "")).trim());
    if (pid > 0 && alive(pid)) pids.push(pid);
  }
  return pids;
}

async function memoryOf(cluster: Cluster, workers: SpawnedWorker[]): Promise<{ queen_mib: number; hive_mib: number; workers: Record<string, number> }> {
  const out: Record<string, number> = {};
  for (const w of workers) out[`${w.model} (--parallel ${w.parallel})`] = round(await rssMiB(w.pid));
  return { queen_mib: round(await rssMiB(cluster.queenPid)), hive_mib: round(await rssMiB(cluster.hivePid)), workers: out };
}

// ---- main -------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  installCleanup();
  for (const d of ["queen", "hive", "worker"]) {
    if (!existsSync(path.join(ROOT, "dist/daemons", d, "main.js"))) throw new Error(`dist/daemons/${d}/main.js is missing: run npm run build first (npm run bench does).`);
  }
  const started = new Date();
  const machine = await machineInfo();
  const vers = await versions();
  log(`${machine.cpu_model}, ${machine.cores_available} cores, ${machine.ram_gib} GiB, load ${machine.load_average_start.join(" ")}; ${QUICK ? "quick" : "full"} run`);

  const results: Results = {
    date: started.toISOString(),
    quick: QUICK,
    machine,
    versions: vers,
    load_average_end: [],
    duration_s: 0,
    peer_build_s: 0,
    models: [],
    overhead: {},
    concurrency: {},
    peer: { available: false, note: "", comparisons: {} },
    control: undefined,
    startup: undefined,
    memory: undefined,
    load: undefined,
    load_note: "",
    errors: [],
    sections: ONLY ? [...ONLY] : ["startup", "overhead", "concurrency", "peer", "control", "memory", "load"],
  };

  // the peer first: a build (full runs, once) takes long and is not counted in the run's time
  let peer: PeerBinary = { ok: false, note: "skipped (--no-peer)", flags: "" };
  if (want("peer") && !argv["no-peer"]) {
    const t = performance.now();
    peer = await ensurePeer({ root: ROOT, allowBuild: !QUICK && !argv["no-peer-build"], log });
    results.peer_build_s = round((performance.now() - t) / 1000, 0);
    log(`peer: ${peer.note}`);
  }
  results.peer.available = peer.ok;
  results.peer.note = peer.note;
  results.peer.build_flags = peer.flags;
  const benchT0 = performance.now();

  const models: ModelCase[] = [{ id: "rbee-tiny", label: "rbee-tiny (F16, 1.7M params)", tokens: 256, concurrencyTokens: 256, concurrencyRounds: CFG.concurrencyRounds, tensorType: "F16" }];
  if (!QUICK) {
    models.push({ id: "rbee-bench-100m", label: "rbee-bench-100m (Q8_0, 106M params)", tokens: 128, concurrencyTokens: 64, concurrencyRounds: Math.max(1, CFG.concurrencyRounds - 1), file: await bench100mFile(), tensorType: "Q8_0" });
  }

  /** Runs one part of the benchmark; a failure is recorded (RESULTS.md lists it, the exit status is 1) and the rest goes on. */
  const guarded = async (name: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      results.errors.push(`${name}: ${message}`);
      log(`FAILED ${name}: ${(err as Error).stack ?? message}`);
    }
  };

  if (want("startup")) {
    await guarded("start-up", async () => {
      const c = await startCluster();
      try {
        await c.spawnWorker("rbee-tiny", 1);
        results.startup = await startup(c.queenUrl);
      } finally {
        await c.stop();
      }
    });
  }

  const needCluster = ["overhead", "concurrency", "peer", "control", "memory"].some(want);
  if (needCluster) await guarded("cluster", async () => {
    log("starting a queen and the localhost hive");
    const cluster = await startCluster();
    try {
      const mem: NonNullable<Results["memory"]> = { idle: { queen_mib: 0, hive_mib: 0, workers: {} }, after_load: { queen_mib: 0, hive_mib: 0, workers: {} } };
      for (const [mi, m] of models.entries()) await guarded(m.id, async () => {
        if (m.file) await cluster.importModel(m.file, m.id);
        let w1 = await cluster.spawnWorker(m.id, 1);
        if (!m.file) m.file = (await w1.client.getJson<{ model_path: string }>("/v1/info")).model_path;
        results.models.push({ id: m.id, label: m.label, tensor_type: m.tensorType, file_bytes: await fileSize(m.file), threads: w1.threads, context_size: w1.context_size });
        if (mi === 0) mem.idle = await memoryOf(cluster, [w1]);
        else mem.idle.workers = { ...mem.idle.workers, ...(await memoryOf(cluster, [w1])).workers };
        if (want("overhead")) results.overhead[m.id] = await overhead(cluster, w1, m);
        const rows: Results["concurrency"][string]["rows"] = [];
        const comparisons: PeerComparison[] = [];
        if (want("concurrency")) rows.push(...(await concurrency(cluster, w1, m)));
        if (want("peer") && peer.ok && peer.binary) {
          try {
            comparisons.push(await peerVersus(peer.binary, cluster, w1, m, 1, m.tokens, CFG.peerRounds));
          } catch (err) {
            results.peer.note += `; single-stream on ${m.id} failed: ${(err as Error).message}`;
          }
        }
        if (want("concurrency") || want("peer") || want("control") || want("memory")) {
          await cluster.stopWorker(w1.worker_id);
          w1 = await cluster.spawnWorker(m.id, 8);
          if (want("concurrency")) rows.push(...(await concurrency(cluster, w1, m)));
          if (want("peer") && peer.ok && peer.binary) {
            try {
              comparisons.push(await peerVersus(peer.binary, cluster, w1, m, 8, m.concurrencyTokens, CFG.peerParallelRounds));
            } catch (err) {
              results.peer.note += `; 8-parallel on ${m.id} failed: ${(err as Error).message}`;
            }
          }
          if (mi === 0 && want("control")) {
            const w = w1;
            await guarded("control plane", async () => void (results.control = await controlPlane(cluster, w)));
          }
          const after = await memoryOf(cluster, [w1]);
          if (mi === 0) mem.after_load = after;
          else mem.after_load.workers = { ...mem.after_load.workers, ...after.workers };
          mem.after_load.queen_mib = after.queen_mib;
          mem.after_load.hive_mib = after.hive_mib;
        }
        await cluster.stopWorker(w1.worker_id).catch(() => undefined);
        const base = rows.find((r) => r.parallel === 1 && r.concurrent === 1)?.tokens_per_s ?? Number.NaN;
        for (const r of rows) r.ratio = round(r.tokens_per_s / base, 2);
        if (rows.length > 0) results.concurrency[m.id] = { tokens: m.concurrencyTokens, rounds: m.concurrencyRounds, rows };
        if (comparisons.length > 0) results.peer.comparisons[m.id] = comparisons;
      });
      if (want("memory")) results.memory = mem;
    } finally {
      await cluster.stop();
    }
  });

  if (want("load")) {
    const loadFile = path.join(ROOT, "bench", "load.ts");
    if (!existsSync(loadFile)) results.load_note = "bench/load.ts is not there yet: no load figures";
    else {
      try {
        const mod = (await import("./load.js")) as { runLoad?: (o: Record<string, unknown>) => Promise<unknown> };
        if (typeof mod.runLoad !== "function") results.load_note = "bench/load.ts exports no runLoad()";
        else {
          const opts = QUICK ? { statusJobs: 1000, concurrency: 50, inferJobs: 32, parallel: 8, tokens: 16, memoryJobs: 2000 } : { statusJobs: 1000, concurrency: 50, inferJobs: 32, parallel: 8, tokens: 16, memoryJobs: 10_000 };
          log(`load (bench/load.ts): ${JSON.stringify(opts)}`);
          // load.ts reports failed jobs on stderr only: keep those lines for RESULTS.md
          const original = process.stderr.write.bind(process.stderr);
          const said: string[] = [];
          process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
            const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
            if (/^load: .*failed/m.test(text)) said.push(text.trim());
            return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
          }) as typeof process.stderr.write;
          try {
            results.load = (await mod.runLoad({ ...opts, log: (l: string) => log(`load: ${l}`) })) as Results["load"];
          } finally {
            process.stderr.write = original;
          }
          results.load_options = opts;
          if (said.length > 0) results.load_note = said.join(" ");
        }
      } catch (err) {
        results.load_note = `bench/load.ts failed: ${(err as Error).message}`;
        results.errors.push(`load: ${(err as Error).message}`);
        log(results.load_note);
      }
    }
  }

  results.duration_s = round((performance.now() - benchT0) / 1000, 0);
  results.load_average_end = loadAverage();
  const md = renderResults(results);
  await writeFile(path.join(ROOT, "bench", "results.json"), `${JSON.stringify(results, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`);
  await writeFile(path.join(ROOT, "bench", "RESULTS.md"), md);
  await writeReadmeSection(results);
  log(`done in ${results.duration_s} s (peer build ${results.peer_build_s} s): bench/RESULTS.md, bench/results.json, bench/README-section.md, README.md`);
  process.stdout.write(md);
  if (results.errors.length > 0) {
    log(`${results.errors.length} part(s) failed: ${results.errors.join(" | ")}`);
    return 1;
  }
  return 0;
}

const README_BEGIN = "<!-- bench:begin (written by npm run bench) -->";
const README_END = "<!-- bench:end -->";

/** README-section.md, and the same text between the README's bench markers (a README without them is left alone). */
async function writeReadmeSection(results: Results): Promise<void> {
  const section = renderReadmeSection(results);
  await writeFile(path.join(ROOT, "bench", "README-section.md"), section);
  const readmePath = path.join(ROOT, "README.md");
  const readme = await readFile(readmePath, "utf8").catch(() => "");
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END, begin);
  if (begin < 0 || end < 0) return;
  await writeFile(readmePath, `${readme.slice(0, begin + README_BEGIN.length)}\n${section.trimEnd()}\n${readme.slice(end)}`);
}

/** `--render`: write RESULTS.md, README-section.md and the README's table again from bench/results.json (no measuring). */
async function render(): Promise<number> {
  const results = JSON.parse(await readFile(path.join(ROOT, "bench", "results.json"), "utf8"), (_k, v: unknown) => (v === null ? Number.NaN : v)) as Results;
  results.errors ??= [];
  await writeFile(path.join(ROOT, "bench", "RESULTS.md"), renderResults(results));
  await writeReadmeSection(results);
  return 0;
}

await (argv.render ? render() : main()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

