/**
 * Shared by the end-to-end tests: real daemons from dist/ under a temp RBEE_HOME, on free ports,
 * every process started under that home killed at teardown (by pid, found through /proc).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { request } from "undici";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent, JobSummary } from "../../shared/protocol.js";
import { pidsMentioning } from "../hive/hive-helpers.js";
import { dist, payload, runJob, waitFor } from "../queen/helpers.js";

export { dist, narrations, payload, runJob, waitFor, type RunResult } from "../queen/helpers.js";

export const built = existsSync(dist("queen")) && existsSync(dist("hive")) && existsSync(dist("worker"));

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A teardown list for hooks (t.teardown is not allowed in test.before): run it in test.after.always. */
export class Cleanup implements Teardown {
  private readonly fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  }
}

/** A fresh RBEE_HOME with `HivePort 0` for localhost; at teardown every process under it is killed, then it is removed. */
export async function makeHome(t: Teardown, hivesConf = "Host localhost\n  HivePort 0\n"): Promise<string> {
  const home = await mkdtemp(path.join(tmpdir(), "rbee-e2e-"));
  await mkdir(path.join(home, "config"), { recursive: true });
  await mkdir(path.join(home, "state"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), hivesConf);
  t.teardown(async () => {
    await killUnder(home);
    await rm(home, { recursive: true, force: true });
  });
  return home;
}

/** SIGKILL for every live process whose command line names `home` (a daemon's --log-file or --model is under it). */
export async function killUnder(home: string): Promise<void> {
  for (const pid of await pidsMentioning(home)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

export interface Proc {
  url: string;
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<number | null>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** a command put in front (e.g. ["/bin/sh", "-c", "ulimit -f 64; exec \"$0\" \"$@\""]) */
  wrap?: string[];
  /** do not wait for `listening` (a daemon expected to refuse to start) */
  noWait?: boolean;
}

/** Starts a built daemon; resolves at its `listening <url>` line (or at once with noWait); stopped at teardown. */
export async function spawnDaemon(t: Teardown, name: "queen" | "hive" | "worker", args: string[], o: SpawnOptions = {}): Promise<Proc> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  if (o.env?.["RBEE_TOKEN"] === undefined) delete env["RBEE_TOKEN"];
  const argv = [...(o.wrap ?? []), process.execPath, dist(name), ...args];
  const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const stop = async (signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  t.teardown(() => stop());
  const proc: Proc = { url: "", child, pid: child.pid ?? 0, output: () => out, exited, stop };
  if (o.noWait) return proc;
  proc.url = await waitFor(`${name} to listen`, () => {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${out}`);
    return /^listening (\S+)$/m.exec(out)?.[1];
  }, 60_000);
  return proc;
}

/** A queen under `home` logging to its state folder, on `port` (0: a free one). */
export const startQueen = (t: Teardown, home: string, args: string[] = [], o: SpawnOptions & { port?: number } = {}): Promise<Proc> =>
  spawnDaemon(t, "queen", ["--port", String(o.port ?? 0), "--log-file", path.join(home, "state", "queen-rbee.log"), ...args], { ...o, env: { RBEE_HOME: home, ...o.env } });

/** A hive of its own (not the queen's child) reporting to `queenUrl`; its workers start from a random port. */
export const startHive = (t: Teardown, home: string, hiveId: string, queenUrl: string, args: string[] = [], o: SpawnOptions = {}): Promise<Proc> =>
  spawnDaemon(t, "hive", [
    "--port", "0", "--hive-id", hiveId, "--queen-url", queenUrl, "--log-file", path.join(home, "state", `rbee-hive-${hiveId}.log`),
    ...(args.includes("--worker-port-start") ? [] : ["--worker-port-start", String(20_000 + Math.floor(Math.random() * 40_000))]),
    ...args,
  ], { ...o, env: { RBEE_HOME: home, ...o.env } });

export interface HiveEntry {
  hive_id: string;
  url: string | null;
  state: string;
  workers: { worker_id: string; pid: number; url: string; state: string; parallel: number; model: string }[];
}

export async function hiveStatus(queenUrl: string, hiveId: string, token?: string): Promise<HiveEntry | undefined> {
  const r = await runJob(queenUrl, { operation: "status" }, token ? { token } : {});
  return payload<{ hives: HiveEntry[] }>(r, "status").hives.find((h) => h.hive_id === hiveId);
}

export async function listJobs(url: string, token?: string): Promise<JobSummary[]> {
  const res = await request(`${url}/v1/jobs`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return ((await res.body.json()) as { jobs: JobSummary[] }).jobs;
}

export interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** Any request, its answer read whole; the body is sent as given (a string) or as JSON. */
export async function http(url: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Raw> {
  const body = init.body === undefined ? undefined : typeof init.body === "string" || Buffer.isBuffer(init.body) ? init.body : JSON.stringify(init.body);
  const res = await request(url, { method: (init.method ?? (body === undefined ? "GET" : "POST")) as "GET", headers: init.headers ?? {}, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = await holdPort(0);
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Binds `port` on 127.0.0.1 (0: any) and keeps it taken until the server is closed. */
export function holdPort(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(s));
  });
}

/** Streams a job and hands each event to `onEvent`; resolves with all events once `end` arrives. */
export async function follow(url: string, jobId: string, onEvent?: (e: JobEvent) => void | Promise<void>, token?: string): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const e of new JobClient(url, { token, label: "test" }).stream(jobId)) {
    events.push(e);
    await onEvent?.(e);
  }
  return events;
}

/** Resident memory of a process in bytes (VmRSS in /proc/<pid>/status). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return kb * 1024;
}

/** Every file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}
