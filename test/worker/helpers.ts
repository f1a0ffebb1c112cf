import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ExecutionContext } from "ava";
import { binaryCommand } from "../../shared/binaries.js";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent } from "../../shared/protocol.js";
import { writeTinyModel } from "../../shared/rbee-tiny.js";

type Teardown = Pick<ExecutionContext, "teardown">;

/** Cleanups for resources made in `test.before` (a hook's own teardown runs when the hook ends). */
export class Cleanups implements Teardown {
  private readonly fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) await fn();
  }
}

/** rbee-tiny written once per test file into a temp dir removed at the end of the test that made it. */
export async function tinyModel(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rbee-worker-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "rbee-tiny.gguf");
  await writeTinyModel(path);
  return path;
}

export interface RunningWorker {
  url: string;
  client: JobClient;
  child: ChildProcessWithoutNullStreams;
  /** stderr so far (JSON log lines), for failure messages */
  stderr(): string;
  exited: Promise<number | null>;
}

/** Starts the built worker on port 0 and resolves once it prints `listening <url>`; killed at teardown. */
export async function startWorker(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningWorker> {
  const bin = binaryCommand("llm-worker-rbee");
  const child = spawn(bin.command, [...bin.args, "--port", "0", ...args], { env: { ...process.env, ...env }, stdio: "pipe" });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 30 s: ${err}`)), 30_000);
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /^listening (\S+)$/.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`worker exited ${code} before listening: ${err}`)));
  });
  return { url, client: new JobClient(url, { label: "worker", unreachableCode: "WORKER_CRASHED" }), child, stderr: () => err, exited };
}

/** Polls until `predicate` holds or the deadline passes (then fails with `what`). */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, predicate: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (predicate(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface WorkerInfo {
  state: string;
  load_job_id: string;
  busy_slots: number;
  queued: number;
  [key: string]: unknown;
}

export const info = (w: RunningWorker): Promise<WorkerInfo> => w.client.getJson<WorkerInfo>("/v1/info");

/** Waits until the model is loaded (state ready). */
export const ready = (w: RunningWorker): Promise<WorkerInfo> => waitFor("the model to load", () => info(w), (i) => i.state === "ready");

/** Every event of a job until `end`. */
export async function collect(w: RunningWorker, jobId: string): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const e of w.client.stream(jobId)) events.push(e);
  return events;
}

/** Creates a job and reads it to its end. */
export async function run(w: RunningWorker, op: object): Promise<JobEvent[]> {
  const { job_id } = await w.client.create(op);
  return collect(w, job_id);
}

export const text = (events: JobEvent[]): string => events.flatMap((e) => (e.event === "token" ? [e.data.text] : [])).join("");
export const tokens = (events: JobEvent[]): string[] => events.flatMap((e) => (e.event === "token" ? [e.data.text] : []));

export function end(events: JobEvent[]) {
  const last = events.at(-1);
  if (last?.event !== "end") throw new Error(`the stream did not end with an end event: ${JSON.stringify(last)}`);
  return last.data;
}

/** A raw POST /v1/jobs, for status codes the JobClient turns into errors. */
export async function post(w: RunningWorker, body: string): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const res = await fetch(`${w.url}/v1/jobs`, { method: "POST", body, headers: { "content-type": "application/json" } });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}
