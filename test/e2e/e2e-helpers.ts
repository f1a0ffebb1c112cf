/**
 * Shared by the end-to-end tests: real daemons from dist/ under a temp RBEE_HOME (makeHome, whose teardown
 * kills every process started under it), on free ports.
 */
import { readFile, readdir } from "node:fs/promises";
import * as path from "node:path";
import { request } from "undici";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent, JobSummary } from "../../shared/protocol.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { daemonEnv, dist, startDaemon, workerPortStart, type Daemon } from "../_helpers/daemon.js";
import { payload, runJob } from "../queen/helpers.js";

export { narrations, payload, runJob, type RunResult } from "../queen/helpers.js";

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** a command put in front (e.g. ["/bin/sh", "-c", "ulimit -f 64; exec \"$0\" \"$@\""]) */
  wrap?: string[];
  /** do not wait for `listening` (a daemon expected to refuse to start) */
  noWait?: boolean;
}

/** Starts a built daemon; resolves at its `listening <url>` line (or at once with noWait); stopped at teardown. */
export const spawnDaemon = (t: Teardown, name: "queen" | "hive" | "worker", args: string[], o: SpawnOptions = {}): Promise<Daemon> =>
  startDaemon(t, [...(o.wrap ?? []), process.execPath, dist(name), ...args], { env: daemonEnv(o.env), noWait: o.noWait ?? false, deadlineMs: 60_000 });

/** A queen under `home` logging to its state folder, on `port` (0: a free one). */
export const startQueen = (t: Teardown, home: string, args: string[] = [], o: SpawnOptions & { port?: number } = {}): Promise<Daemon> =>
  spawnDaemon(t, "queen", ["--port", String(o.port ?? 0), "--log-file", path.join(home, "state", "queen-rbee.log"), ...args], { ...o, env: { RBEE_HOME: home, ...o.env } });

/** A hive of its own (not the queen's child) reporting to `queenUrl`; its workers start from a random port. */
export const startHive = (t: Teardown, home: string, hiveId: string, queenUrl: string, args: string[] = [], o: SpawnOptions = {}): Promise<Daemon> =>
  spawnDaemon(t, "hive", [
    "--port", "0", "--hive-id", hiveId, "--queen-url", queenUrl, "--log-file", path.join(home, "state", `rbee-hive-${hiveId}.log`),
    ...workerPortStart(args),
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
