import { JobClient } from "../../shared/job-client.js";
import type { EndData, JobEvent } from "../../shared/protocol.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { daemonEnv, dist, startDaemon, type Daemon } from "../_helpers/daemon.js";
import { http } from "../_helpers/http.js";

/** The built queen on port 0 (later `--port` in `args` wins) under `home`; stopped at teardown. */
export const startQueen = (t: Teardown, home: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> =>
  startDaemon(t, [process.execPath, dist("queen"), "--port", "0", ...args], { env: daemonEnv({ RBEE_HOME: home, ...env }), deadlineMs: 30_000 });

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
  const r = await http(url, { method: "POST", body, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  return { status: r.status, body: r.json === undefined ? r.text : r.json };
}

export async function getJson<T>(url: string, token?: string): Promise<T> {
  return (await http(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })).json as T;
}
