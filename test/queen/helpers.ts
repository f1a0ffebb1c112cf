import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { JobClient } from "../../shared/job-client.js";
import type { EndData, JobEvent } from "../../shared/protocol.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const dist = (name: "queen" | "hive" | "worker"): string => path.join(ROOT, "dist", "daemons", name, "main.js");

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function tempHome(t: Teardown, prefix = "rbee-queen-"): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `predicate` until it returns a truthy value, or throws after `ms`. */
export async function waitFor<T>(what: string, predicate: () => T | Promise<T>, ms = 30_000, every = 50): Promise<NonNullable<Awaited<T>>> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await predicate();
    if (v) return v as NonNullable<Awaited<T>>;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export interface Daemon {
  url: string;
  child: ChildProcess;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Starts a built binary with `--port 0`, returns at its `listening <url>` line; stopped at teardown. */
export async function startDaemon(t: Teardown, entry: string, args: string[], env: NodeJS.ProcessEnv): Promise<Daemon> {
  const child = spawn(process.execPath, [entry, "--port", "0", ...args], { env: { ...process.env, RBEE_TOKEN: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const stop = async (signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  t.teardown(() => stop());
  const url = await waitFor(`${path.basename(path.dirname(entry))} to listen (output: ${out})`, () => {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${out}`);
    return /^listening (\S+)$/m.exec(out)?.[1];
  }, 30_000);
  return { url, child, output: () => out, stop };
}

export const startQueen = (t: Teardown, home: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> =>
  startDaemon(t, dist("queen"), args, { RBEE_HOME: home, ...env });

export interface RunResult {
  jobId: string;
  correlationId: string;
  events: JobEvent[];
  end: EndData;
}

/** Creates a job and reads its stream to the end. */
export async function runJob(url: string, op: object, opts: { token?: string; correlationId?: string; onEvent?: (e: JobEvent, jobId: string) => void } = {}): Promise<RunResult> {
  const client = new JobClient(url, { token: opts.token, label: "queen" });
  const created = await client.create(op, opts.correlationId ? { correlationId: opts.correlationId } : {});
  const events: JobEvent[] = [];
  for await (const e of client.stream(created.job_id)) {
    events.push(e);
    opts.onEvent?.(e, created.job_id);
  }
  const end = events.at(-1);
  if (end?.event !== "end") throw new Error("stream ended without end");
  return { jobId: created.job_id, correlationId: created.correlation_id, events, end: end.data };
}

/** The payload of the job's `data` event with that action. */
export function payload<T>(r: RunResult, action: string): T {
  const e = r.events.find((x) => x.event === "data" && x.data.action === action);
  if (!e || e.event !== "data") throw new Error(`no data event ${action}: ${JSON.stringify(r.events)}`);
  return e.data.payload as T;
}

export const narrations = (r: RunResult): string[] =>
  r.events.flatMap((e) => (e.event === "narration" ? [`${e.data.action}: ${e.data.human}`] : []));

export async function postJson(url: string, body: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.statusCode, body: parsed };
}

export async function getJson<T>(url: string, token?: string): Promise<T> {
  const res = await request(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return (await res.body.json()) as T;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
