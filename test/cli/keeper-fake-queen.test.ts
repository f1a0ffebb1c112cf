/**
 * The keeper binary end to end against a fake queen (the shared JobServer with scripted handlers,
 * in this process, on port 0): output faces, exit codes, Ctrl-C, operation mapping, token, logs.
 */
import test from "ava";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { JobClient } from "../../shared/job-client.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { freePort } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { FAKE_WORDS, startFakeQueen, type FakeQueen } from "./helpers/fake-queen.js";
import { assertBuilt, cleanEnv, runKeeper, startKeeper } from "./helpers/keeper.js";

const ESC = "\x1b";

test.before(() => assertBuilt());

async function setup(t: Teardown, token?: string): Promise<{ queen: FakeQueen; env: NodeJS.ProcessEnv; home: string }> {
  const queen = await startFakeQueen(0, "/dev/null", token);
  t.teardown(() => queen.close());
  const home = await tempHome(t);
  return { queen, env: cleanEnv({ RBEE_HOME: home, RBEE_QUEEN_URL: queen.url }), home };
}

const words = (n: number) => Array.from({ length: n }, (_, i) => `${FAKE_WORDS[i % FAKE_WORDS.length]} `).join("");

test("--json: every event as one JSON line {event, ...data} on stdout and nothing else", async (t) => {
  const { env } = await setup(t);
  const r = await runKeeper(["infer", "hello", "--max-tokens", "4", "--json"], { env });
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const e of events) {
    t.true(["narration", "progress", "token", "data", "end"].includes(e["event"] as string));
    t.false("id" in e, "no SSE id");
    t.true(Array.isArray(e["path"]));
  }
  t.is(events.filter((e) => e["event"] === "token").length, 4);
  const end = events.at(-1) as Record<string, unknown>;
  t.is(end["event"], "end");
  t.is(end["status"], "completed");
  t.deepEqual(end["usage"], { prompt_tokens: 1, completion_tokens: 4 });
  t.is((events.find((e) => e["event"] === "token")?.["path"] as string[]).length, 3, "worker tokens carry the whole path");
  t.is(r.stderr, "");
});

test("plain (no TTY): the text alone on stdout with a final newline, narration as plain lines on stderr", async (t) => {
  const { env } = await setup(t);
  const r = await runKeeper(["infer", "hello", "world", "--max-tokens", "6"], { env });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `${words(6)}\n`);
  t.regex(r.stderr, /^\[queen-rbee\] Scheduling rbee-tiny on hive localhost\.$/m);
  t.regex(r.stderr, /^\[rbee-hive localhost\] Spawning worker w-test-1\.$/m);
  t.regex(r.stderr, /^\[progress\] load_model rbee-tiny: 4\/4 layers \(100%\)$/m);
  t.regex(r.stderr, /^rbee: 6 tokens, [\d.]+ tokens\/s, first token/m);
  t.false(r.stdout.includes(ESC) || r.stderr.includes(ESC), "no escape codes");
});

test("the prompt comes from stdin when none is given; --system sends messages", async (t) => {
  const { queen, env } = await setup(t);
  const r = await runKeeper(["infer", "--max-tokens", "1", "--seed", "7", "--stop", "x", "--stop", "y", "--ignore-eos", "--keep-alive", "-1"], { env, input: "from stdin\n" });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(queen.received.at(-1), {
    operation: "infer", prompt: "from stdin", max_tokens: 1, seed: 7, stop: ["x", "y"], ignore_eos: true, keep_alive: -1,
    model: "rbee-tiny", temperature: 0.7,
  });
  const s = await runKeeper(["infer", "--system", "Be brief.", "--prompt", "Hi", "--max-tokens", "1", "--model", "rbee-tiny", "--temperature", "0.2", "--top-p", "0.9", "--top-k", "40", "--hive", "localhost", "--worker", "w-test-1"], { env });
  t.is(s.code, 0, s.stderr);
  const op = queen.received.at(-1) as Record<string, unknown>;
  t.deepEqual(op["messages"], [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]);
  t.false("prompt" in op);
  t.like(op, { temperature: 0.2, top_p: 0.9, top_k: 40, hive_id: "localhost", worker_id: "w-test-1" });
});

test("exit 1 on a failed job, with its code and message on stderr", async (t) => {
  const { env } = await setup(t);
  const r = await runKeeper(["infer", "please fail"], { env });
  t.is(r.code, 1);
  t.is(r.stdout, "");
  t.regex(r.stderr, /^rbee: MODEL_NOT_FOUND: No model nope-model/m);
  const j = await runKeeper(["infer", "please fail", "--json"], { env });
  t.is(j.code, 1);
  t.like(JSON.parse(j.stdout.trimEnd().split("\n").at(-1) as string), { event: "end", status: "failed", error: { code: "MODEL_NOT_FOUND" } });
});

test("exit 2 for usage errors: local ones never reach the queen; a 400 from the queen at POST", async (t) => {
  const { queen, env } = await setup(t);
  for (const argv of [["infer", "x", "--temperature", "9"], ["infre", "x"], ["infer", "--bogus"], ["infer", "x", "--max-tokens", "many"], ["infer"]]) {
    const r = await runKeeper(argv, { env });
    t.is(r.code, 2, argv.join(" "));
    t.regex(r.stderr, /^rbee: /, argv.join(" "));
    t.is(r.stdout, "");
  }
  t.is(queen.received.length, 0);
  const refused = await runKeeper(["infer", "x", "--model", "refused-by-queen", "--json"], { env });
  t.is(refused.code, 2);
  t.regex(refused.stderr, /INVALID_REQUEST: model: this fake queen refuses it/);
  t.is(refused.stdout, "");
});

test("exit 3 when a queen URL that was given does not answer; nothing is started", async (t) => {
  const home = await tempHome(t);
  const port = await freePort();
  const env = cleanEnv({ RBEE_HOME: home, RBEE_QUEEN_URL: `http://127.0.0.1:${port}` });
  const r = await runKeeper(["status"], { env });
  t.is(r.code, 3);
  t.regex(r.stderr, new RegExp(`not answering at http://127\\.0\\.0\\.1:${port} \\(from RBEE_QUEEN_URL\\)`));
  const f = await runKeeper(["infer", "hi", "--queen-url", `http://127.0.0.1:${port}`], { env: cleanEnv({ RBEE_HOME: home }) });
  t.is(f.code, 3);
  t.regex(f.stderr, /from --queen-url/);
  t.deepEqual(await readdir(home).catch(() => []), [], "no queen was started, no state written");
});

test("Ctrl-C sends DELETE for the job, waits for the cancelled end and exits 130", async (t) => {
  const { queen, env } = await setup(t);
  const k = startKeeper(["infer", "go slow"], { env });
  await waitFor("streamed tokens", () => k.stdout().split(" ").length > 3, 15_000);
  k.child.kill("SIGINT");
  const r = await k.done;
  t.is(r.code, 130);
  t.is(queen.deletes.length, 1);
  const job = queen.server.registry.get(queen.deletes[0] as string);
  t.is(job?.status, "cancelled");
  t.regex(r.stderr, /cancelling job-/);
  t.regex(r.stderr, /was cancelled/);
  t.true(r.stdout.endsWith("\n"), "the partial text still ends its line");
});

test("every command maps to its queen operation", async (t) => {
  const { queen, env, home } = await setup(t);
  const cases: [string[], Record<string, unknown>][] = [
    [["status"], { operation: "status" }],
    [["hive", "start"], { operation: "hive_start", hive_id: "localhost" }],
    [["hive", "stop", "gpu1"], { operation: "hive_stop", hive_id: "gpu1" }],
    [["hive", "list"], { operation: "hive_list" }],
    [["hive", "status", "--hive", "gpu1"], { operation: "hive_status", hive_id: "gpu1" }],
    [["worker", "spawn", "--hive", "gpu1", "--model", "m1", "--device", "gpu:0", "--gpu-layers", "12", "--context-size", "256", "--parallel", "2", "--keep-alive", "0"],
      { operation: "worker_spawn", hive_id: "gpu1", model: "m1", device: "gpu:0", gpu_layers: 12, context_size: 256, parallel: 2, keep_alive: 0 }],
    [["worker", "list"], { operation: "worker_list", hive_id: "localhost" }],
    [["worker", "stop", "w-9", "--hive", "gpu1"], { operation: "worker_stop", hive_id: "gpu1", worker_id: "w-9" }],
    [["model", "list"], { operation: "model_list", hive_id: "localhost" }],
    [["model", "get", "m1"], { operation: "model_get", hive_id: "localhost", model: "m1" }],
    [["model", "download", "hf:o/r/f.gguf", "--name", "f"], { operation: "model_download", hive_id: "localhost", model: "hf:o/r/f.gguf", name: "f" }],
    [["model", "import", "rel/x.gguf"], { operation: "model_import", hive_id: "localhost", path: join(home, "rel/x.gguf") }],
    [["model", "delete", "m1"], { operation: "model_delete", hive_id: "localhost", model: "m1" }],
    [["embed", "a", "b"], { operation: "embed", input: ["a", "b"], model: "rbee-tiny" }],
  ];
  // Four keepers at a time; each sends one operation, so the set received is the set expected.
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4);
    const results = await Promise.all(batch.map(([argv]) => runKeeper(argv, { env, cwd: home })));
    results.forEach((r, k) => t.is(r.code, 0, `${batch[k]?.[0].join(" ")}: ${r.stderr}`));
  }
  const canonical = (o: object) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
  const sorted = (ops: object[]) => ops.map(canonical).sort();
  t.deepEqual(sorted(queen.received), sorted(cases.map(([, op]) => op)));
});

test("results print readably: status tables, lists, vectors, download progress", async (t) => {
  const { env } = await setup(t);
  const status = await runKeeper(["status"], { env });
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^hive localhost {2}online {2}http:\/\/127\.0\.0\.1:9000/m);
  t.regex(status.stdout, /^ {2}w-test-1 +rbee-tiny +ready +1\/2 +busy +5 min 0 s +cpu +0\/4/m);
  t.regex(status.stdout, /^ {2}rbee-tiny +3\.00 MiB +llama/m);
  const embed = await runKeeper(["embed", "a", "b"], { env });
  t.is(embed.stdout, "[0,0.5,-0.25]\n[1,0.5,-0.25]\n");
  const dl = await runKeeper(["model", "download", "http://example.invalid/tiny.gguf"], { env });
  t.regex(dl.stderr, /\[progress\] download tiny\.gguf: 4\.00 MiB \/ 4\.00 MiB \(100%\)/);
  t.regex(dl.stdout, /^id: tiny$/m);
});

test("jobs lists the queen's jobs; cancel cancels a running one and reports it", async (t) => {
  const { queen, env } = await setup(t);
  const client = new JobClient(queen.url);
  const { job_id } = await client.create({ operation: "infer", prompt: "slow one" });
  const jobs = await runKeeper(["jobs", "--json"], { env });
  t.is(jobs.code, 0, jobs.stderr);
  t.like(JSON.parse(jobs.stdout), { jobs: [{ job_id, operation: "infer" }] });
  const table = await runKeeper(["jobs"], { env });
  t.regex(table.stdout, new RegExp(`^${job_id} +infer +(running|queued)`, "m"));
  const c = await runKeeper(["cancel", job_id], { env });
  t.is(c.code, 0, c.stderr);
  t.is(c.stdout, `${job_id} cancelled.\n`);
  t.deepEqual(queen.deletes, [job_id]);
  const again = await runKeeper(["cancel", job_id, "--json"], { env });
  t.deepEqual(JSON.parse(again.stdout), { job_id, status: "cancelled" });
  const missing = await runKeeper(["cancel", "job-doesnotexist"], { env });
  t.is(missing.code, 1);
  t.regex(missing.stderr, /JOB_NOT_FOUND/);
  t.is((await runKeeper(["cancel", "nope"], { env })).code, 2);
});

test("the token: RBEE_TOKEN, else the config folder's token file", async (t) => {
  const { env, home } = await setup(t, "s3cret-token");
  const without = await runKeeper(["status"], { env });
  t.is(without.code, 1);
  t.regex(without.stderr, /UNAUTHORIZED/);
  t.is((await runKeeper(["status"], { env: { ...env, RBEE_TOKEN: "s3cret-token" } })).code, 0);
  await mkdir(join(home, "config"), { recursive: true });
  await writeFile(join(home, "config", "token"), "s3cret-token\n", { mode: 0o600 });
  const withFile = await runKeeper(["status"], { env });
  t.is(withFile.code, 0, withFile.stderr);
});

test("logs: the state folder's JSON lines merged by time, filtered by service, job and correlation id", async (t) => {
  const home = await tempHome(t);
  const state = join(home, "state");
  await mkdir(state, { recursive: true });
  const line = (ts: string, service: string, human: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ ts, level: "info", service, node: null, action: "x", human, ...extra });
  await writeFile(join(state, "queen-rbee.log"), [
    "listening http://127.0.0.1:8500",
    line("2025-01-01T00:00:01.000Z", "queen-rbee", "q1", { job_id: "job-q", correlation_id: "corr-a" }),
    line("2025-01-01T00:00:03.000Z", "queen-rbee", "q2", { correlation_id: "corr-b" }),
  ].join("\n") + "\n");
  await writeFile(join(state, "rbee-hive-localhost.log"), [
    line("2025-01-01T00:00:02.000Z", "rbee-hive", "h1", { job_id: "job-h", parent_job_id: "job-q", correlation_id: "corr-a" }),
  ].join("\n") + "\n");
  const env = cleanEnv({ RBEE_HOME: home });
  const all = await runKeeper(["logs"], { env });
  t.is(all.code, 0, all.stderr);
  t.deepEqual(all.stdout.trimEnd().split("\n").map((l) => l.split(/ +/)[3]), ["q1", "h1", "q2"]);
  t.regex(all.stdout, /^2025-01-01T00:00:02\.000Z rbee-hive info {2}h1 {2}\(job-h corr-a\)$/m);
  const hive = await runKeeper(["logs", "--service", "hive", "--json"], { env });
  t.deepEqual(hive.stdout.trimEnd().split("\n").map((l) => (JSON.parse(l) as { human: string }).human), ["h1"]);
  const corr = await runKeeper(["logs", "--correlation-id", "corr-a"], { env });
  t.is(corr.stdout.trimEnd().split("\n").length, 2);
  const job = await runKeeper(["logs", "--job", "job-q"], { env });
  t.is(job.stdout.trimEnd().split("\n").length, 2, "a job's lines and those of the jobs it started");
  t.is((await runKeeper(["logs", "--service", "nope"], { env })).code, 2);

  const follow = startKeeper(["logs", "--follow", "--service", "hive"], { env });
  await waitFor("the first lines", () => follow.stdout().includes("h1"), 15_000);
  await writeFile(join(state, "llm-worker-rbee-w1.log"), line("2025-01-01T00:00:04.000Z", "llm-worker-rbee", "w1") + "\n");
  await writeFile(join(state, "rbee-hive-localhost.log"), line("2025-01-01T00:00:05.000Z", "rbee-hive", "h2") + "\n", { flag: "a" });
  await waitFor("a followed line", () => follow.stdout().includes("h2"), 15_000);
  follow.child.kill("SIGINT");
  const f = await follow.done;
  t.is(f.code, 130);
  t.false(f.stdout.includes("w1"));
});
