/**
 * A real cascade for the ops end-to-end tests: dist/daemons/queen under a temp RBEE_HOME on a free port,
 * logging to the state folder like the keeper's auto-start, with the localhost hive on HivePort 0 (the
 * queen starts it on the first job; it spawns rbee-tiny workers on the CPU).
 */
import test from "ava";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { JobClient } from "../../../shared/job-client.js";
import type { EndData, JobEvent } from "../../../shared/protocol.js";
import { Cleanup } from "../../_helpers/cleanup.js";
import { daemonsBuilt, dist, startDaemon, type Daemon } from "../../_helpers/daemon.js";
import { alive } from "../../_helpers/process.js";
import { makeHome } from "../../_helpers/temp.js";
import { waitFor } from "../../_helpers/wait.js";
import { cleanEnv } from "./keeper.js";

export interface WorkerJson {
  worker_id: string;
  url: string;
  pid: number;
  state: string;
  keep_alive: number;
  last_used: string;
  [k: string]: unknown;
}

export interface HiveJson {
  hive_id: string;
  url: string;
  state: string;
  workers: WorkerJson[];
  [k: string]: unknown;
}

export interface Finished {
  jobId: string;
  correlationId: string;
  events: JobEvent[];
  end: EndData;
}

export interface Cascade {
  home: string;
  stateDir: string;
  url: string;
  token: string | undefined;
  /** `Authorization` for plain HTTP calls (empty without a token). */
  auth: Record<string, string>;
  client: JobClient;
  /** The environment for the keeper (dist/cli/rbee.js) to talk to this queen and read this state folder. */
  keeperEnv: NodeJS.ProcessEnv;
  run(op: object, correlationId?: string): Promise<Finished>;
  /** The localhost hive from a status job (heartbeat data), once it is there. */
  localhost(): Promise<HiveJson | undefined>;
  stop(): Promise<void>;
}

export async function startCascade(opts: { token?: string } = {}): Promise<Cascade> {
  const files = new Cleanup();
  const home = await makeHome(files, { prefix: "rbee-ops-" });
  const stateDir = join(home, "state");
  const workerPids = new Set<number>();
  let queen: Daemon | undefined;
  let client: JobClient | undefined;

  const cascade: Cascade = {
    home,
    stateDir,
    url: "",
    token: opts.token,
    auth: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    client: undefined as unknown as JobClient,
    keeperEnv: {},
    async run(op, correlationId) {
      const c = client as JobClient;
      const created = await c.create(op, correlationId ? { correlationId } : {});
      const events: JobEvent[] = [];
      for await (const e of c.stream(created.job_id)) events.push(e);
      const end = events.at(-1);
      if (end?.event !== "end") throw new Error(`the stream of ${created.job_id} closed without end`);
      return { jobId: created.job_id, correlationId: created.correlation_id, events, end: end.data };
    },
    async localhost() {
      const r = await cascade.run({ operation: "status" });
      const data = r.events.find((e) => e.event === "data");
      const hives = data?.event === "data" ? (data.data.payload as { hives: HiveJson[] }).hives : [];
      const h = hives.find((x) => x.hive_id === "localhost");
      for (const w of h?.workers ?? []) if (typeof w.pid === "number") workerPids.add(w.pid);
      return h;
    },
    async stop() {
      // The queen stops its hive, which stops its workers; whatever is left after that is killed by pid.
      const pids = client ? cascade.localhost().catch(() => undefined) : undefined;
      await Promise.race([pids, new Promise((r) => setTimeout(r, 10_000).unref())]);
      const hivePid = Number((await readFile(join(stateDir, "rbee-hive-localhost.pid"), "utf8").catch(() => "")).trim()) || undefined;
      await queen?.stop();
      for (const pid of [hivePid, ...workerPids]) {
        if (!pid) continue;
        await waitFor(`pid ${pid} to exit`, () => !alive(pid), 10_000).catch(() => {
          if (alive(pid)) process.kill(pid, "SIGKILL");
        });
      }
      // RBEE_OPS_KEEP=1 leaves the temp home (logs, catalog) behind to look into a failure.
      if (process.env["RBEE_OPS_KEEP"]) process.stderr.write(`rbee ops cascade kept at ${home}\n`);
      else await files.run();
    },
  };

  const argv = [process.execPath, dist("queen"), "--port", "0", "--log-file", join(stateDir, "queen-rbee.log")];
  try {
    queen = await startDaemon(files, argv, { env: cleanEnv({ RBEE_HOME: home, RBEE_TOKEN: opts.token }), graceMs: 20_000 });
  } catch (err) {
    await cascade.stop();
    throw err;
  }
  client = new JobClient(queen.url, { token: opts.token, label: "queen" });
  Object.assign(cascade, { url: queen.url, client, keeperEnv: cleanEnv({ RBEE_HOME: home, RBEE_QUEEN_URL: queen.url, RBEE_TOKEN: opts.token }) });
  return cascade;
}

/**
 * The cascade of a test file: started and warmed up (then `ready` run) in test.before, stopped in
 * test.after.always. The object returned is filled in by that hook.
 */
export function cascadeForFile(opts: { token?: string } = {}, ready?: (c: Cascade, worker: WorkerJson) => unknown): Cascade {
  const c = {} as Cascade;
  test.before(async () => {
    if (!daemonsBuilt) return;
    Object.assign(c, await startCascade(opts));
    const worker = await warmUp(c);
    await ready?.(c, worker);
  });
  test.after.always(async () => {
    if (c.stop) await c.stop();
  });
  return c;
}

/**
 * Starts the hive and a worker with a short infer. On a loaded machine the hive may declare a worker that is
 * busy with its first job dead (WORKER_CRASHED: its hang check allows 1.25 s of silence); that is told on
 * stderr and tried once more, so the tests after it measure what they are about, not start-up.
 */
export async function warmUp(c: Cascade): Promise<WorkerJson> {
  for (let attempt = 1; ; attempt++) {
    const r = await c.run({ operation: "infer", prompt: "warm up", max_tokens: 2 });
    if (r.end.status === "completed") break;
    if (attempt > 1 || r.end.error?.code !== "WORKER_CRASHED") throw new Error(`warm-up infer: ${JSON.stringify(r.end)}`);
    process.stderr.write(`rbee ops: warm-up infer failed ${r.end.error.code} (${r.end.error.message}); trying once more.\n`);
  }
  const [w] = await workersWhen(c, (ws) => ws.some((x) => x.state === "ready"));
  return w as WorkerJson;
}

/** GET with the cascade's token (or the one given); status and body text. */
export async function getText(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, type: String(res.headers["content-type"] ?? ""), body: await res.body.text() };
}

/** The workers of hive localhost once `pred` holds for them (status follows heartbeats, every 2 s). */
export async function workersWhen(c: Cascade, pred: (ws: WorkerJson[]) => boolean, ms = 30_000): Promise<WorkerJson[]> {
  let last: WorkerJson[] = [];
  // A status job per poll: a few a second is plenty for state that moves with 2 s heartbeats.
  return waitFor(() => `hive localhost's workers to match; last: ${JSON.stringify(last)}`, async () => {
    last = (await c.localhost())?.workers ?? [];
    return pred(last) && last;
  }, ms, 250);
}
