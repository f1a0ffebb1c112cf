/**
 * The keeper day to day against a real queen -> hive -> worker: `rbee logs` follows one request through the
 * three daemons' log files, `rbee status` shows idle time and keep-alive left, and keep_alive unloads workers.
 */
import test from "ava";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { alive } from "../_helpers/process.js";
import { waitFor } from "../_helpers/wait.js";
import { cascadeForFile, workersWhen } from "../cli/helpers/cascade.js";
import { runKeeper, startKeeper } from "../cli/helpers/keeper.js";

const serial = daemonsBuilt ? test.serial : test.skip;
const SERVICES = ["queen-rbee", "rbee-hive", "llm-worker-rbee"];
const c = cascadeForFile();

const keeper = (args: string[]) => runKeeper(args, { env: c.keeperEnv, timeoutMs: 60_000 });
type Line = { ts: string; service: string; correlation_id?: string; job_id?: string; parent_job_id?: string };
const jsonLines = (out: string): Line[] => out.trimEnd().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Line);

serial("rbee logs --correlation-id: one infer's lines from all three daemons, merged in time order", async (t) => {
  const infer = await keeper(["infer", "hello logs", "--max-tokens", "4", "--json"]);
  t.is(infer.code, 0, infer.stderr);
  const first = JSON.parse(infer.stdout.split("\n")[0] as string) as { correlation_id: string; path: string[] };
  const corr = first.correlation_id;
  const queenJob = first.path[0] as string;

  const json = await keeper(["logs", "--correlation-id", corr, "--json"]);
  t.is(json.code, 0, json.stderr);
  const lines = jsonLines(json.stdout);
  t.deepEqual([...new Set(lines.map((l) => l.service))].sort(), [...SERVICES].sort(), json.stdout);
  t.true(lines.every((l) => l.correlation_id === corr));
  const times = lines.map((l) => Date.parse(l.ts));
  t.true(times.every((x, i) => i === 0 || x >= (times[i - 1] as number)), "merged by time");

  const plain = await keeper(["logs", "--correlation-id", corr]);
  const text = plain.stdout.trimEnd().split("\n");
  t.is(text.length, lines.length);
  t.true(text.every((l) => /^\d{4}-\d\d-\d\dT\S+Z (queen-rbee|rbee-hive\[localhost\]|llm-worker-rbee\[\S+\]) +(info|warn|error|debug) /.test(l)), plain.stdout);
  t.true(text.every((l) => l.includes(corr)));

  const worker = jsonLines((await keeper(["logs", "--correlation-id", corr, "--service", "worker", "--json"])).stdout);
  t.true(worker.length > 0 && worker.every((l) => l.service === "llm-worker-rbee"));
  // --job: the queen job's subtree, down to the worker job the hive job started.
  const job = jsonLines((await keeper(["logs", "--job", queenJob, "--json"])).stdout);
  t.true(job.some((l) => l.service === "queen-rbee" && l.job_id === queenJob));
  t.true(job.some((l) => l.service === "rbee-hive" && l.parent_job_id === queenJob));
  t.true(job.some((l) => l.service === "llm-worker-rbee"), json.stdout);
  t.true(job.every((l) => l.correlation_id === corr), "nothing of other requests");
});

serial("rbee logs --follow shows a new request's lines from every daemon as they are written; Ctrl-C exits 130", async (t) => {
  const corr = "corr-ops-follow-1";
  const follow = startKeeper(["logs", "--follow", "--correlation-id", corr], { env: c.keeperEnv, timeoutMs: 60_000 });
  t.teardown(() => void follow.child.kill("SIGKILL"));
  // A marker line seen on stdout means the first read is done: what comes next is read as it is written.
  await appendFile(join(c.stateDir, "ops-marker.log"), `${JSON.stringify({ ts: new Date().toISOString(), service: "marker", correlation_id: corr, human: "marker" })}\n`);
  await waitFor("the follower to be reading", () => follow.stdout().includes(" marker "), 15_000);
  const r = await c.run({ operation: "infer", prompt: "follow me", max_tokens: 3 }, corr);
  t.is(r.end.status, "completed");
  await waitFor(() => `lines of all three daemons (got: ${follow.stdout()})`, () => SERVICES.every((s) => follow.stdout().includes(` ${s}`)), 15_000);
  follow.child.kill("SIGINT");
  const done = await follow.done;
  t.is(done.code, 130);
  t.true(done.stdout.trimEnd().split("\n").every((l) => l.includes(corr)));
});

serial("rbee status: idle time and keep-alive left per worker; keep_alive -1 shows forever", async (t) => {
  const used = await keeper(["infer", "idle soon", "--max-tokens", "2", "--keep-alive", "300"]);
  t.is(used.code, 0, used.stderr);
  const status = await keeper(["status"]);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /WORKER\s+MODEL\s+STATE\s+SLOTS\s+IDLE\s+KEEP-ALIVE LEFT\s+DEVICE\s+GPU LAYERS\s+URL/);
  const row = /ready\s+\d+\/\d+\s+(\d+) s\s+(?:(\d+) min )?(\d+) s\s+cpu\s/.exec(status.stdout);
  t.truthy(row, status.stdout);
  const idle = Number(row?.[1]);
  const left = Number(row?.[2] ?? 0) * 60 + Number(row?.[3]);
  t.true(idle < 60 && left > 240 && left <= 300 && Math.abs(idle + left - 300) <= 1, `idle ${idle} s, left ${left} s`);

  t.is((await keeper(["infer", "stay", "--max-tokens", "2", "--keep-alive", "-1"])).code, 0);
  await workersWhen(c, (ws) => ws.length === 1 && ws[0]?.keep_alive === -1);
  t.regex((await keeper(["status"])).stdout, /ready\s+\d+\/\d+\s+\d+ s\s+forever\s+cpu\s/);
});

serial("infer with keep_alive 1 through the queen: the worker is gone from status within a few seconds", async (t) => {
  const [before] = await workersWhen(c, (ws) => ws.length === 1);
  const r = await keeper(["infer", "then go", "--max-tokens", "2", "--keep-alive", "1", "--json"]);
  t.is(r.code, 0, r.stderr);
  const ended = Date.now();
  await workersWhen(c, (ws) => ws.length === 0, 20_000);
  const gone = (Date.now() - ended) / 1000;
  t.log(`worker gone from status ${gone.toFixed(1)} s after the job ended (keep_alive 1 s, heartbeats every 2 s)`);
  t.true(gone < 10, `${gone} s`);
  await waitFor("the worker process to exit", () => !alive(before?.pid as number), 10_000);
  t.regex((await keeper(["status"])).stdout, /no workers/);
});
