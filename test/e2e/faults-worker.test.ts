/**
 * Faults around workers and streams, done for real on one queen with its localhost hive: a worker
 * SIGKILLed mid-stream, a subscriber that hangs up mid-stream, a download cut off half-way.
 */
import test from "ava";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { request } from "undici";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent } from "../../shared/protocol.js";
import { writeTinyModel } from "../../shared/rbee-tiny.js";
import { Cleanup, type Teardown } from "../_helpers/cleanup.js";
import { daemonsBuilt, type Daemon } from "../_helpers/daemon.js";
import { alive } from "../_helpers/process.js";
import { makeHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { follow, hiveStatus, listJobs, narrations, payload, runJob, startQueen } from "./e2e-helpers.js";

const serial = daemonsBuilt ? test.serial : test.skip;
const cleanup = new Cleanup();
let home = "";
let queen: Daemon;

test.before(async () => {
  if (!daemonsBuilt) return;
  home = await makeHome(cleanup);
  queen = await startQueen(cleanup, home);
});
test.after.always(() => cleanup.run());

/** The localhost hive's first ready worker, once a heartbeat has shown it. */
const readyWorker = async () =>
  waitFor("a ready worker in status", async () => (await hiveStatus(queen.url, "localhost"))?.workers.find((w) => w.state === "ready" && alive(w.pid)), 60_000);

serial("a worker SIGKILLed mid-stream: the queen job ends WORKER_CRASHED at once; the next request gets a new worker", async (t) => {
  const warm = await runJob(queen.url, { operation: "infer", prompt: "warm up", max_tokens: 2 });
  t.is(warm.end.status, "completed", JSON.stringify(warm.end));
  const victim = await readyWorker();
  const client = new JobClient(queen.url);
  const created = await client.create({ operation: "infer", prompt: "go on and on", max_tokens: 100_000, ignore_eos: true, worker_id: victim.worker_id });
  let killedAt = 0;
  const events = await follow(queen.url, created.job_id, (e) => {
    if (e.event === "token" && killedAt === 0) {
      process.kill(victim.pid, "SIGKILL");
      killedAt = performance.now();
    }
  });
  const ms = Math.round(performance.now() - killedAt);
  t.log(`worker crash detected ${ms} ms after SIGKILL`);
  const end = events.at(-1);
  t.true(killedAt > 0, "a token arrived before the kill");
  t.like(end, { event: "end", data: { status: "failed", error: { code: "WORKER_CRASHED" } } });
  t.true(ms < 15_000, `${ms} ms`);
  t.true(events.some((e) => e.event === "narration" && e.data.action === "worker_crashed"), "the hive tells why");
  t.like((await listJobs(queen.url)).find((j) => j.job_id === created.job_id), { status: "failed" });

  // The queen may still see the dead worker in the last heartbeat; the hive places the job anew.
  const next = await runJob(queen.url, { operation: "infer", prompt: "after the crash", max_tokens: 4, ignore_eos: true });
  t.is(next.end.status, "completed", `${JSON.stringify(next.end)} ${narrations(next).join(" | ")}`);
  t.is(next.end.usage?.completion_tokens, 4);
  const fresh = await readyWorker();
  t.not(fresh.worker_id, victim.worker_id);
  t.false(narrations(next).some((n) => n.includes(`Worker ${victim.worker_id} at`)), narrations(next).join(" | "));
});

serial("a subscriber that hangs up mid-stream: the job and the other subscriber go on to the end", async (t) => {
  const client = new JobClient(queen.url);
  const created = await client.create({ operation: "infer", prompt: "two readers", max_tokens: 48, ignore_eos: true });
  const quitter = new AbortController();
  let quitterTokens = 0;
  const res = await request(`${queen.url}/v1/jobs/${created.job_id}/stream`, { signal: quitter.signal });
  t.is(res.statusCode, 200);
  const dropped = (async () => {
    try {
      for await (const chunk of res.body) {
        quitterTokens += (String(chunk).match(/^event: token$/gm) ?? []).length;
        if (quitterTokens >= 2) quitter.abort();
      }
    } catch {
      // the abort
    }
  })();
  const events = await follow(queen.url, created.job_id);
  await dropped;
  t.true(quitterTokens >= 2 && quitterTokens < 48, `the quitter left after ${quitterTokens} tokens`);
  t.like(events.at(-1), { event: "end", data: { status: "completed", finish_reason: "length", usage: { completion_tokens: 48 } } });
  t.is(events.filter((e) => e.event === "token").length, 48);
  // A late subscriber still gets the whole job by replay.
  const replay = await follow(queen.url, created.job_id);
  t.deepEqual(replay.map((e) => e.id), events.map((e) => e.id));
});

/** Serves one GGUF; the first GET is cut off half-way (headers promise the whole file), later ones honour Range. */
async function flakyServer(t: Teardown, file: Buffer): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    requests.push(range ? `range ${range[1]}` : "full");
    if (requests.length === 1) {
      res.writeHead(200, { "content-length": file.length, "content-type": "application/octet-stream" });
      res.write(file.subarray(0, file.length >> 1), () => setTimeout(() => req.socket.destroy(), 50));
      return;
    }
    const start = range ? Number(range[1]) : 0;
    res.writeHead(range ? 206 : 200, { "content-length": file.length - start, ...(range ? { "content-range": `bytes ${start}-${file.length - 1}/${file.length}` } : {}) });
    res.end(file.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.unref();
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/Cut-Model.gguf`, requests };
}

serial("a download cut off half-way through queen -> hive fails DOWNLOAD_FAILED keeping the part; the re-run resumes and completes", async (t) => {
  const src = path.join(tmpdir(), `rbee-e2e-src-${process.pid}.gguf`);
  cleanup.teardown(() => rm(src, { force: true }));
  await writeTinyModel(src);
  const file = await readFile(src);
  const server = await flakyServer(cleanup, file);
  const first = await runJob(queen.url, { operation: "model_download", model: server.url });
  t.like(first.end, { status: "failed", error: { code: "DOWNLOAD_FAILED" } });
  t.regex(first.end.error?.message ?? "", /run(ning)? (it|the download) again/);
  const parts = (await readdir(path.join(home, "models"))).filter((f) => f.endsWith(".part"));
  t.deepEqual(parts, ["cut-model.gguf.part"]);
  t.false((payload<{ models: { id: string }[] }>(await runJob(queen.url, { operation: "model_list" }), "model_list")).models.some((m) => m.id === "cut-model"));

  const second = await runJob(queen.url, { operation: "model_download", model: server.url });
  t.is(second.end.status, "completed", JSON.stringify(second.end));
  t.true(narrations(second).some((n) => /Resuming cut-model at \d+ bytes/.test(n)), narrations(second).join(" | "));
  t.regex(server.requests[1] ?? "", /^range [1-9]\d*$/);
  const progress = second.events.filter((e): e is Extract<JobEvent, { event: "progress" }> => e.event === "progress");
  t.is(progress.at(-1)?.data.done, file.length);
  t.is(progress[0]?.data.path.length, 2, "hive progress nests under the queen job");
  const model = payload<{ id: string; size_bytes: number }>(second, "model_download");
  t.like(model, { id: "cut-model", size_bytes: file.length });
  t.deepEqual((await readdir(path.join(home, "models"))).filter((f) => f.startsWith("cut-model")), ["cut-model.gguf"]);
});
