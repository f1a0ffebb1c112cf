/**
 * Bad input against the real daemons: every malformed, oversized, mistyped or out-of-range body is
 * a 400/413 with the contract's code naming the field, and no job is made; hostile ids and URLs
 * are refused; unknown job ids are 404; a broken hives.conf is named by file and line; odd Unicode
 * in a prompt goes through the whole cascade intact; a prompt longer than the context is CONTEXT_OVERFLOW.
 */
import test from "ava";
import { readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { Readable } from "node:stream";
import { request } from "undici";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { http } from "../_helpers/http.js";
import { makeHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { BAD_CASES, HIVE_ACCEPTS, WORKER_ACCEPTS, operationOf, type BadCase } from "./bad-input-cases.js";
import { hiveStatus, listJobs, runJob, spawnDaemon, startHive, startQueen } from "./e2e-helpers.js";

const run = daemonsBuilt ? test : test.skip;

/** Sends every case (a few at a time) and checks status, code and the field named. */
async function sendAll(t: import("ava").ExecutionContext, url: string, cases: BadCase[], who: string): Promise<void> {
  const queue = [...cases];
  const worker = async (): Promise<void> => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      const r = await http(`${url}/v1/jobs`, { method: "POST", body: typeof c.body === "string" ? c.body : JSON.stringify(c.body), headers: { "content-type": "application/x-www-form-urlencoded" } });
      const what = `${who}: ${c.name} -> ${r.status} ${r.text.slice(0, 300)}`;
      t.is(r.status, 400, what);
      t.deepEqual(Object.keys(r.json?.error ?? {}).sort(), ["code", "message"], what);
      t.is(r.json?.error?.code, c.code, what);
      if (c.field !== undefined) t.true(String(r.json?.error?.message).startsWith(`${c.field}: `), what);
      if (c.code === "UNKNOWN_OPERATION") t.regex(r.json?.error?.message ?? "", /accepts: .*infer/, what);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

run("every bad body is refused at POST with the contract's code naming the field, by queen and hive, and makes no job", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home);
  const hive = await startHive(t, home, "h1", queen.url);
  await sendAll(t, queen.url, BAD_CASES, "queen");
  await sendAll(t, hive.url, BAD_CASES.filter((c) => { const op = operationOf(c); return op === undefined || HIVE_ACCEPTS.has(op) || c.code !== "INVALID_REQUEST"; }), "hive");
  t.deepEqual(await listJobs(queen.url), [], "no job was made on the queen");
  t.deepEqual(await listJobs(hive.url), [], "no job was made on the hive");

  // Too large: with a Content-Length, and streamed without one.
  const big = JSON.stringify({ operation: "infer", prompt: "x".repeat(1024 * 1024) });
  const declared = await http(`${queen.url}/v1/jobs`, { method: "POST", body: big });
  t.is(declared.status, 413);
  t.is(declared.json?.error?.code, "PAYLOAD_TOO_LARGE");
  const res = await request(`${queen.url}/v1/jobs`, { method: "POST", body: Readable.from([Buffer.from(big.slice(0, 600_000)), Buffer.from(big.slice(600_000))]) });
  t.is(res.statusCode, 413);
  t.is(((await res.body.json()) as { error: { code: string } }).error.code, "PAYLOAD_TOO_LARGE");

  // A bad heartbeat is refused naming the field, and registers nothing.
  const beat = { hive_id: "evil", url: "http://127.0.0.1:1", version: "1", devices: [], workers: [], models: [] };
  for (const [field, body] of [["hive_id", { ...beat, hive_id: "../x" }], ["url", { ...beat, url: "file:///etc/passwd" }], ["workers", { ...beat, workers: "all" }], ["devices[0].memory_total", { ...beat, devices: [{ id: "cpu", kind: "cpu", name: "c", memory_total: -1, memory_free: 0 }] }]] as const) {
    const r = await http(`${queen.url}/v1/hives/heartbeat`, { method: "POST", body });
    t.is(r.status, 400, r.text);
    t.true(String(r.json?.error?.message).startsWith(`${field}: `), r.text);
  }
  t.is(await hiveStatus(queen.url, "evil"), undefined);
  t.deepEqual((await listJobs(queen.url)).map((j) => j.operation), ["status"], "only the status job just run");

  // Unknown job ids: 404 JOB_NOT_FOUND on stream and DELETE, however odd the id.
  for (const id of ["job-doesnotexist", "..%2F..%2Fetc%2Fpasswd", "x".repeat(5000), "%00"]) {
    for (const method of ["GET", "DELETE"]) {
      const r = await http(`${queen.url}/v1/jobs/${id}${method === "GET" ? "/stream" : ""}`, { method });
      t.is(r.status, 404, `${method} ${id.slice(0, 30)}: ${r.text}`);
      t.is(r.json?.error?.code, "JOB_NOT_FOUND");
      t.true(r.text.length < 400, "the id is not echoed in full");
    }
  }
  const done = (await listJobs(queen.url))[0]!;
  const again = await http(`${queen.url}/v1/jobs/${done.job_id}`, { method: "DELETE" });
  t.is(again.status, 409);
  t.is(again.json?.error?.code, "JOB_FINISHED");
});

run("a hives.conf with a mistake: the queen refuses to start naming file and line; edited while it runs, hive operations name them", async (t) => {
  const home = await makeHome(t, { hivesConf: "Host localhost\n  HivePort 0\nHost gpu1\n  HostName 10.0.0.5\n  Colour blue\n" });
  const conf = path.join(home, "config", "hives.conf");
  const refused = await spawnDaemon(t, "queen", ["--port", "0"], { env: { RBEE_HOME: home }, noWait: true });
  t.is(await refused.exited, 2, refused.output());
  const lines = refused.output().trim().split("\n");
  t.is(lines.length, 1, refused.output());
  t.true(lines[0]!.startsWith(`queen-rbee: ${conf}:5: `), lines[0]);
  t.regex(lines[0]!, /Colour/);

  await writeFile(conf, "Host localhost\n  HivePort 0\n");
  const queen = await startQueen(t, home);
  await writeFile(conf, "Host localhost\n  HivePort 0\n  HivePort 1\n");
  for (const op of [{ operation: "hive_list" }, { operation: "status" }, { operation: "model_list", hive_id: "localhost" }, { operation: "hive_start", hive_id: "localhost" }]) {
    const r = await runJob(queen.url, op);
    t.like(r.end, { status: "failed", error: { code: "INVALID_REQUEST" } }, op.operation);
    t.true(r.end.error?.message.startsWith(`${conf}:3: `), r.end.error?.message);
  }
  await writeFile(conf, "Host localhost\n  HivePort 0\n");
  t.is((await runJob(queen.url, { operation: "hive_list" })).end.status, "completed", "fixed, it works again");
});

const ODD = "héllo \u0000\u0007 🐝 \u202e\u2028 \ud83d\ude00 \"quoted\" \\ <b>&amp;</b>";

run("odd Unicode reaches the worker intact; the worker refuses bad bodies too; a prompt longer than the context is CONTEXT_OVERFLOW", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home);
  const corr = "corr-unicode-e2e";
  const odd = await runJob(queen.url, { operation: "infer", prompt: ODD, max_tokens: 4, ignore_eos: true, seed: 7 }, { correlationId: corr });
  t.is(odd.end.status, "completed", JSON.stringify(odd.end));
  t.is(odd.end.usage?.completion_tokens, 4);
  const viaQueen = odd.end.usage?.prompt_tokens ?? 0;
  t.true(viaQueen > 0);
  const chat = await runJob(queen.url, { operation: "infer", messages: [{ role: "system", content: ODD }, { role: "user", content: "🐝\u0000" }], max_tokens: 2 });
  t.is(chat.end.status, "completed", JSON.stringify(chat.end));

  // The same prompt sent straight to the worker counts the same tokens: queen and hive changed nothing.
  const worker = await waitFor("the worker in status", async () => (await hiveStatus(queen.url, "localhost"))?.workers[0], 30_000);
  const direct = await runJob(worker.url, { operation: "infer", prompt: ODD, max_tokens: 1 });
  t.is(direct.end.usage?.prompt_tokens, viaQueen);
  const plain = await runJob(worker.url, { operation: "infer", prompt: "héllo", max_tokens: 1 });
  t.true((plain.end.usage?.prompt_tokens ?? 0) < viaQueen, "the odd characters count: they arrived");
  // The worker refuses the same bad bodies as queen and hive, and makes no job for them.
  const before = (await listJobs(worker.url)).length;
  await sendAll(t, worker.url, BAD_CASES.filter((c) => { const op = operationOf(c); return op === undefined || WORKER_ACCEPTS.has(op) || c.code !== "INVALID_REQUEST"; }), "worker");
  t.is((await listJobs(worker.url)).length, before);
  // Every JSON log line of every daemon is still one JSON object (stdout's `listening` line shares the file).
  for (const f of ["queen-rbee.log", "rbee-hive-localhost.log", `llm-worker-rbee-${worker.worker_id}.log`]) {
    const lines = (await readFile(path.join(home, "state", f), "utf8")).trim().split("\n");
    for (const line of lines.filter((l) => l.startsWith("{"))) t.notThrows(() => JSON.parse(line), `${f}: ${line.slice(0, 200)}`);
    t.true(lines.some((l) => l.startsWith("{") && l.includes(corr)), `${f} has ${corr}`);
  }

  const long = Array.from({ length: 6000 }, (_, i) => ["bee", "hive", "queen", "honey"][i % 4]).join(" ");
  const overflow = await runJob(queen.url, { operation: "infer", prompt: long, max_tokens: 4 });
  t.like(overflow.end, { status: "failed", error: { code: "CONTEXT_OVERFLOW" } });
  t.regex(overflow.end.error?.message ?? "", /\d+ tokens/);
  // A body of exactly 1 MiB is accepted, and its forwarded copies (defaults left out) fit the limit at every hop.
  const shell = JSON.stringify({ operation: "infer", prompt: "", max_tokens: 1 });
  const fullBody = { operation: "infer", prompt: "x".repeat(1024 * 1024 - Buffer.byteLength(shell)), max_tokens: 1 };
  t.is(Buffer.byteLength(JSON.stringify(fullBody)), 1024 * 1024);
  const full = await runJob(queen.url, fullBody);
  t.like(full.end, { status: "failed", error: { code: "CONTEXT_OVERFLOW" } }, JSON.stringify(full.end.error));
  const after = await runJob(queen.url, { operation: "infer", prompt: "still fine", max_tokens: 2 });
  t.is(after.end.status, "completed", "the worker is unharmed");
});
