/**
 * A queen of the benchmark's own under a throw-away RBEE_HOME (localhost hive on a free port), with helpers
 * to run jobs, import models and spawn workers through it, and the pids of queen, hive and workers.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { JobClient } from "../../shared/job-client.js";
import type { EndData, JobEvent } from "../../shared/protocol.js";
import { ROOT } from "./machine.js";
import { descendants, spawnTracked, stopPid, trackDir, trackPid, untrackDir, waitForLine } from "./proc.js";
import { sleep } from "./stats.js";
import { binaryCommand } from "../../shared/binaries.js";

export interface JobResult {
  end: EndData;
  payload: unknown;
  events: JobEvent[];
}

/** Runs one job to its end; throws unless it completed. */
export async function runJob(client: JobClient, op: object): Promise<JobResult> {
  const { job_id } = await client.create(op);
  const events: JobEvent[] = [];
  let payload: unknown;
  for await (const e of client.stream(job_id)) {
    events.push(e);
    if (e.event === "data") payload = e.data.payload;
    if (e.event === "end") {
      if (e.data.status !== "completed") throw new Error(`${(op as { operation?: string }).operation} ended ${e.data.status}: ${e.data.error?.code} ${e.data.error?.message}`);
      return { end: e.data, payload, events };
    }
  }
  throw new Error(`the stream of ${job_id} closed without end`);
}

export interface SpawnedWorker {
  worker_id: string;
  url: string;
  pid: number;
  model: string;
  parallel: number;
  threads: number;
  context_size: number;
  client: JobClient;
}

export interface Cluster {
  home: string;
  queenUrl: string;
  queenPid: number;
  hiveUrl: string;
  hivePid: number;
  queen: JobClient;
  hive: JobClient;
  importModel(file: string, name: string): Promise<void>;
  spawnWorker(model: string, parallel: number, extra?: Record<string, unknown>): Promise<SpawnedWorker>;
  stopWorker(workerId: string): Promise<void>;
  stop(): Promise<void>;
}

export interface BenchQueen {
  home: string;
  url: string;
  pid: number;
  /** Stops the queen and every process under it, and removes its RBEE_HOME. */
  stop(): Promise<void>;
}

/**
 * queen-rbee on a free port under a fresh RBEE_HOME (localhost hive on HivePort 0, no token), logging to its
 * state folder; tracked, so the run kills it whatever happens.
 */
export async function startQueen(opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; prefix?: string } = {}): Promise<BenchQueen> {
  const home = await mkdtemp(path.join(tmpdir(), opts.prefix ?? "rbee-bench-"));
  trackDir(home);
  await mkdir(path.join(home, "config"), { recursive: true });
  await mkdir(path.join(home, "state"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), "Host localhost\n  HivePort 0\n");
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, RBEE_HOME: home };
  delete env["RBEE_TOKEN"];
  const child = spawnTracked(process.execPath, [...(opts.nodeArgs ?? []), ...binaryCommand("queen-rbee").args, "--port", "0", "--log-file", path.join(home, "state", "queen-rbee.log")], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const pid = child.pid ?? 0;
  const stop = async (): Promise<void> => {
    const below = await descendants(pid);
    for (const p of below) trackPid(p);
    await stopPid(pid, 20_000);
    for (const p of below) await stopPid(p, 5_000);
    await rm(home, { recursive: true, force: true });
    untrackDir(home);
  };
  try {
    return { home, url: (await waitForLine(child, /^listening (\S+)$/m, 30_000))[1]!, pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Starts queen-rbee on a free port under a fresh RBEE_HOME and the localhost hive under it. */
export async function startCluster(opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Cluster> {
  const { home, url: queenUrl, pid: queenPid, stop } = await startQueen(opts);
  const queen = new JobClient(queenUrl, { label: "queen" });
  try {
    await runJob(queen, { operation: "hive_start", hive_id: "localhost" });
    let hiveUrl = "";
    for (let i = 0; i < 100 && hiveUrl === ""; i++) {
      const st = await runJob(queen, { operation: "status" });
      const h = (st.payload as { hives: Array<{ hive_id: string; url: string; state: string }> }).hives.find((x) => x.hive_id === "localhost" && x.state === "online");
      hiveUrl = h?.url ?? "";
      if (hiveUrl === "") await sleep(100);
    }
    if (hiveUrl === "") throw new Error("the localhost hive did not come online");
    const hivePid = Number((await readFile(path.join(home, "state", "rbee-hive-localhost.pid"), "utf8").catch(() => "")).trim()) || (await descendants(queenPid))[0] || 0;
    const hive = new JobClient(hiveUrl, { label: "hive" });
    return {
      home,
      queenUrl,
      queenPid,
      hiveUrl,
      hivePid,
      queen,
      hive,
      async importModel(file, name) {
        await runJob(queen, { operation: "model_import", hive_id: "localhost", path: file, name });
      },
      async spawnWorker(model, parallel, extra = {}) {
        const r = await runJob(queen, { operation: "worker_spawn", hive_id: "localhost", model, parallel, keep_alive: -1, ...extra });
        const p = r.payload as { worker_id: string; url: string; pid: number };
        const client = new JobClient(p.url, { label: "worker" });
        const info = await client.getJson<{ threads: number; context_size: number; state: string }>("/v1/info");
        // the queen learns of workers from the hive's heartbeats: wait until it lists this one as ready
        for (let i = 0; i < 200; i++) {
          const st = await runJob(queen, { operation: "status" });
          const hives = (st.payload as { hives: Array<{ workers: Array<{ worker_id: string; state: string }> }> }).hives;
          if (hives.some((h) => h.workers.some((w) => w.worker_id === p.worker_id && w.state === "ready"))) break;
          await sleep(50);
        }
        return { worker_id: p.worker_id, url: p.url, pid: p.pid, model, parallel, threads: info.threads, context_size: info.context_size, client };
      },
      async stopWorker(workerId) {
        await runJob(queen, { operation: "worker_stop", hive_id: "localhost", worker_id: workerId });
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
