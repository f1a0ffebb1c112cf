/** Shared by the hive tests: a real rbee-hive from dist/ on port 0 with its own RBEE_HOME. */
import * as path from "node:path";
import { binaryCommand } from "../../shared/binaries.js";
import { JobClient } from "../../shared/job-client.js";
import type { EndData, JobEvent } from "../../shared/protocol.js";
import type { WorkerJson } from "../../daemons/hive/hive-worker.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { daemonEnv, startDaemon, workerPortStart, type Daemon } from "../_helpers/daemon.js";
import { tempHome } from "../_helpers/temp.js";

export interface HiveProcess extends Daemon {
  home: string;
  client: JobClient;
  logFile: string;
}

/** Starts `rbee-hive --port 0 ...args` under `home` (a tempHome by default); the teardown stops it and anything it left behind. */
export async function startHive(t: Teardown, args: string[] = [], env: NodeJS.ProcessEnv = {}, home?: string): Promise<HiveProcess> {
  home ??= await tempHome(t, "rbee-hive-test-");
  const logFile = path.join(home, "hive.log");
  const bin = binaryCommand("rbee-hive");
  const argv = [bin.command, ...bin.args, "--port", "0", "--log-file", logFile, ...workerPortStart(args), ...args];
  const hive = await startDaemon(t, argv, { env: daemonEnv({ RBEE_HOME: home, ...env }), deadlineMs: 15_000, graceMs: 12_000 });
  const client = new JobClient(hive.url, { token: env["RBEE_TOKEN"], unreachableCode: "HIVE_UNREACHABLE", label: "test hive" });
  return { ...hive, home, logFile, client };
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

export async function listWorkers(client: JobClient): Promise<WorkerJson[]> {
  const run = await runJob(client, { operation: "worker_list" });
  return (dataOf(run, "worker_list") as { workers: WorkerJson[] }).workers;
}
