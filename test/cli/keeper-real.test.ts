/**
 * The keeper against the REAL daemons (dist/daemons/{queen,hive,worker}/main.js): auto-start of
 * queen-rbee under a temp RBEE_HOME on a free port, the localhost hive on HivePort 0, rbee-tiny on
 * the CPU. Skipped (not faked) while a daemon is not built.
 */
import test from "ava";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Cleanup } from "../_helpers/cleanup.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { alive, freePort } from "../_helpers/process.js";
import { makeHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { assertBuilt, cleanEnv, plain, runKeeper, startKeeper, underPty } from "./helpers/keeper.js";

const serial = daemonsBuilt ? test.serial : test.skip;

const files = new Cleanup();
let home = "";
let env: NodeJS.ProcessEnv = {};
let port = 0;
const long = { timeoutMs: 120_000 };

type Ev = { event: string; [k: string]: unknown };
const events = (stdout: string): Ev[] => stdout.trimEnd().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Ev);
const pidOf = async (name: string): Promise<number | undefined> => Number((await readFile(join(home, "state", `${name}.pid`), "utf8").catch(() => "")).trim()) || undefined;

test.before(async () => {
  if (!daemonsBuilt) return;
  assertBuilt();
  home = await makeHome(files, { prefix: "rbee-keeper-real-" });
  port = await freePort();
  env = cleanEnv({ RBEE_HOME: home, RBEE_DEFAULT_QUEEN_PORT: String(port) });
});

test.after.always(async () => {
  if (!home) return;
  const pids = [await pidOf("queen-rbee"), await pidOf("rbee-hive-localhost")];
  await runKeeper(["queen", "stop"], { env, ...long }).catch(() => undefined);
  for (const pid of pids) if (pid && alive(pid)) process.kill(pid, "SIGKILL");
  await files.run();
});

serial("auto-starts the real queen; status draws the localhost hive", async (t) => {
  const r = await runKeeper(["status", "--json"], { env, ...long });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /rbee: queen-rbee is up on http:\/\/127\.0\.0\.1:\d+/);
  const data = events(r.stdout).find((e) => e.event === "data");
  t.truthy(data);
  t.true(((data?.["payload"] as { hives: { hive_id: string }[] }).hives ?? []).some((h) => h.hive_id === "localhost"));
  const q = await runKeeper(["queen", "status"], { env });
  t.is(q.code, 0);
  t.regex(q.stdout, new RegExp(`^queen-rbee \\S+ is up at http://127\\.0\\.0\\.1:${port}`));
});

serial("infer --json: the whole cascade's events, tokens from the worker, usage and timing", async (t) => {
  const r = await runKeeper(["infer", "hello bees", "--max-tokens", "8", "--ignore-eos", "--seed", "1", "--json"], { env, ...long });
  t.is(r.code, 0, r.stderr);
  const evs = events(r.stdout);
  const tokens = evs.filter((e) => e.event === "token");
  t.is(tokens.length, 8);
  t.true((tokens[0]?.["path"] as string[]).length >= 3, "queen -> hive -> worker");
  const actors = new Set(evs.filter((e) => e.event === "narration").map((e) => e["actor"]));
  t.true(actors.has("queen-rbee") && actors.has("rbee-hive") && actors.has("llm-worker-rbee"), [...actors].join(","));
  const end = evs.at(-1) as Ev;
  t.like(end, { event: "end", status: "completed", usage: { completion_tokens: 8 } });
  t.is(typeof (end["timing"] as { tokens_per_s: unknown }).tokens_per_s, "number");
});

serial("infer without a terminal: text on stdout ending in a newline, narration on stderr", async (t) => {
  const r = await runKeeper(["infer", "hello", "--max-tokens", "6", "--ignore-eos"], { env, ...long });
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.trim().length > 0);
  t.true(r.stdout.endsWith("\n"));
  t.false(r.stdout.includes("\x1b") || r.stderr.includes("\x1b"));
  t.regex(r.stderr, /^\[queen-rbee\] /m);
  t.regex(r.stderr, /^rbee: 6 tokens, /m);
});

serial("on a pseudo-terminal: the real job tree, the text and the summary", async (t) => {
  const { code, screen } = await underPty(["infer", "hello", "--max-tokens", "12", "--ignore-eos"], env, { columns: 120, lines: 40, ...long });
  const text = plain(screen);
  t.is(code, 0, text);
  t.regex(text, /^✔ queen-rbee job-/m);
  t.regex(text, /^ {2}✔ rbee-hive localhost job-/m);
  t.regex(text, /✔ llm-worker-rbee \S+ job-/);
  t.regex(text, /✔ 12 tokens, [\d.]+ tokens\/s, first token/);
});

serial("Ctrl-C cancels the real job (DELETE reaches it) and exits 130", async (t) => {
  const k = startKeeper(["infer", "tell a long story", "--max-tokens", "100000", "--ignore-eos", "--json"], { env, ...long });
  await waitFor("tokens", () => k.stdout().split("\n").filter((l) => l.includes('"event":"token"')).length >= 3, 60_000);
  const jobId = (JSON.parse(k.stdout().split("\n")[0] as string) as { path: string[] }).path[0] as string;
  k.child.kill("SIGINT");
  const r = await k.done;
  t.is(r.code, 130, r.stderr);
  t.like(events(r.stdout).at(-1), { event: "end", status: "cancelled" });
  const jobs = await runKeeper(["jobs", "--json"], { env });
  t.like((JSON.parse(jobs.stdout) as { jobs: { job_id: string }[] }).jobs.find((j) => j.job_id === jobId), { status: "cancelled" });
});

serial("a failed job is exit 1 with its code; a usage error is exit 2", async (t) => {
  const r = await runKeeper(["model", "get", "no-such-model"], { env, ...long });
  t.is(r.code, 1);
  t.regex(r.stderr, /rbee: MODEL_NOT_FOUND: /);
  t.is((await runKeeper(["infer", "x", "--top-p", "0"], { env })).code, 2);
});

serial("queen stop stops the queen and the hive it started", async (t) => {
  const queen = await pidOf("queen-rbee");
  const hive = await pidOf("rbee-hive-localhost");
  t.truthy(queen);
  const r = await runKeeper(["queen", "stop"], { env, ...long });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `Stopped queen-rbee (pid ${queen}).\n`);
  t.false(alive(queen as number));
  if (hive) await waitFor("the hive to exit", () => !alive(hive), 15_000);
  t.is((await runKeeper(["queen", "status"], { env })).code, 3);
});
