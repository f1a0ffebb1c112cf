import { binaryCommand } from "../../shared/binaries.js";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent } from "../../shared/protocol.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { daemonEnv, startDaemon, type Daemon } from "../_helpers/daemon.js";
import { waitFor } from "../_helpers/wait.js";

export interface RunningWorker extends Daemon {
  client: JobClient;
}

/** Starts the built worker on port 0 and resolves once it prints `listening <url>`; killed at teardown. */
export async function startWorker(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningWorker> {
  const bin = binaryCommand("llm-worker-rbee");
  // stdin a pipe, as under a hive: the worker watches it for the hive's end.
  const worker = await startDaemon(t, [bin.command, ...bin.args, "--port", "0", ...args], { env: daemonEnv(env), deadlineMs: 30_000, teardownSignal: "SIGKILL", stdin: "pipe" });
  return { ...worker, client: new JobClient(worker.url, { label: "worker", unreachableCode: "WORKER_CRASHED" }) };
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
export async function ready(w: RunningWorker): Promise<WorkerInfo> {
  let last: WorkerInfo | undefined;
  return waitFor(() => `the model to load; last info: ${JSON.stringify(last)}`, async () => ((last = await info(w)).state === "ready" ? last : undefined), 30_000);
}

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
