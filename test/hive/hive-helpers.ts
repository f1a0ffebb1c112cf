/** Shared by the hive tests: a real rbee-hive from dist/ on port 0 with its own RBEE_HOME. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import type { ExecutionContext } from "ava";
import { binaryCommand } from "../../shared/binaries.js";
import { JobClient } from "../../shared/job-client.js";
import type { EndData, JobEvent } from "../../shared/protocol.js";

export interface HiveProcess {
  url: string;
  home: string;
  proc: ChildProcess;
  client: JobClient;
  exited: Promise<number | null>;
  logFile: string;
}

/** Polls `predicate` until it is truthy or `ms` pass; never a fixed sleep. */
export async function waitFor<T>(what: string, predicate: () => T | Promise<T>, ms = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function tempHome(t: ExecutionContext): Promise<string> {
  const home = await mkdtemp(path.join(tmpdir(), "rbee-hive-test-"));
  t.teardown(async () => {
    await killUnder(home);
    await rm(home, { recursive: true, force: true });
  });
  return home;
}

/** Starts `rbee-hive --port 0 ...args`; the teardown stops it and anything it left behind. */
export async function startHive(t: ExecutionContext, args: string[] = [], env: NodeJS.ProcessEnv = {}, home?: string): Promise<HiveProcess> {
  home ??= await tempHome(t);
  const logFile = path.join(home, "hive.log");
  const bin = binaryCommand("rbee-hive");
  const childEnv: NodeJS.ProcessEnv = { ...process.env, RBEE_HOME: home, ...env };
  if (env["RBEE_TOKEN"] === undefined) delete childEnv["RBEE_TOKEN"];
  // Tests run side by side: each hive's workers start from their own random port, so they rarely collide.
  const ports = args.includes("--worker-port-start") ? [] : ["--worker-port-start", String(20_000 + Math.floor(Math.random() * 40_000))];
  const proc = spawn(bin.command, [...bin.args, "--port", "0", "--log-file", logFile, ...ports, ...args], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 12_000);
      await exited;
      clearTimeout(timer);
    }
  });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rbee-hive did not listen within 15 s: ${stderr}`)), 15_000);
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const m = /^listening (\S+)/.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`rbee-hive exited (${code}) before listening: ${stderr}`)));
  });
  const token = env["RBEE_TOKEN"];
  return { url, home, proc, exited, logFile, client: new JobClient(url, { token, unreachableCode: "HIVE_UNREACHABLE", label: "test hive" }) };
}

export interface JobRun {
  jobId: string;
  events: JobEvent[];
  end: EndData;
}

/** Creates a job and reads its stream to the end; `onEvent` sees each event as it arrives. */
export async function runJob(client: JobClient, op: object, onEvent?: (e: JobEvent) => void): Promise<JobRun> {
  const { job_id } = await client.create(op);
  const events: JobEvent[] = [];
  for await (const e of client.stream(job_id)) {
    events.push(e);
    onEvent?.(e);
  }
  const last = events.at(-1);
  if (last?.event !== "end") throw new Error(`job ${job_id} stream ended without end`);
  return { jobId: job_id, events, end: last.data };
}

/** The payload of the job's own `data` event for `action` (not a relayed one). */
export const dataOf = (run: JobRun, action: string): unknown =>
  run.events.flatMap((e) => (e.event === "data" && e.data.action === action && e.data.path.length === 1 ? [e.data.payload] : []))[0];

export const narrations = (run: JobRun, action?: string) =>
  run.events.flatMap((e) => (e.event === "narration" && (action === undefined || e.data.action === action) ? [e.data] : []));

export interface WorkerObject {
  worker_id: string;
  hive_id: string;
  url: string;
  pid: number;
  model: string;
  device: string;
  state: string;
  gpu_layers: number;
  total_layers: number;
  parallel: number;
  busy_slots: number;
  keep_alive: number;
  last_used: string;
}

export async function listWorkers(client: JobClient): Promise<WorkerObject[]> {
  const run = await runJob(client, { operation: "worker_list" });
  return (dataOf(run, "worker_list") as { workers: WorkerObject[] }).workers;
}

/** Pids of live processes whose command line mentions `text` (a test's RBEE_HOME), read from /proc. */
export async function pidsMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // A zombie (state Z) has exited; only its parent has not reaped it yet.
      if (cmdline.includes(text) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Last resort of a teardown: no process started under a test's home survives the test. */
async function killUnder(home: string): Promise<void> {
  for (const pid of await pidsMentioning(home)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
