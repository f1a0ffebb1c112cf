import { readFile } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { Readable } from "node:stream";
import test, { type ExecutionContext } from "ava";
import { CancelledError, RbeeError } from "../../shared/errors.js";
import { Job } from "../../shared/job.js";
import { JobRegistry } from "../../shared/job-registry.js";
import { JobServer, MAX_BODY_BYTES } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import { JOB_ID_PATTERN, type JobEvent, type JobSummary } from "../../shared/protocol.js";
import { createJobEventParser } from "../../shared/sse.js";
import { http, type Raw } from "../_helpers/http.js";
import { gate, startJobServer, untilCancelled } from "../_helpers/jobs.js";
import { tempDir } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";

// ---- helpers -----------------------------------------------------------------------------------

const quiet = (): Logger => new Logger("llm-worker-rbee", null, "/dev/null");

const call = (url: string, method: "GET" | "POST" | "DELETE", path: string, init: { body?: string | Readable; headers?: Record<string, string> } = {}): Promise<Raw> =>
  http(`${url}${path}`, { method, ...init });
const post = (url: string, op: unknown, headers: Record<string, string> = {}): Promise<Raw> =>
  call(url, "POST", "/v1/jobs", { body: JSON.stringify(op), headers: { "content-type": "application/json", ...headers } });

/** A live SSE reader over a raw socket, so a test can hang up mid-stream. */
interface Reader {
  events: JobEvent[];
  raw: string;
  pings: number;
  status: number;
  headers: IncomingHttpHeaders;
  done: Promise<void>;
  destroy(): void;
}
function openStream(url: string, path: string, headers: Record<string, string> = {}): Promise<Reader> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { headers }, (res) => {
      const reader: Reader = {
        events: [], raw: "", pings: 0, status: res.statusCode ?? 0, headers: res.headers,
        done: new Promise((r) => res.once("close", () => r())),
        destroy: () => req.destroy(),
      };
      const parser = createJobEventParser((e) => reader.events.push(e), { onComment: (c) => c === "ping" && reader.pings++ });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        reader.raw += chunk;
        parser.feed(chunk);
      });
      res.on("error", () => {});
      resolve(reader);
    });
    req.on("error", reject);
    req.end();
  });
}
async function readAll(url: string, path: string, headers: Record<string, string> = {}): Promise<Reader> {
  const r = await openStream(url, path, headers);
  await r.done;
  return r;
}

/** The stream invariants: ids 1, 2, 3... after `after`, `end` exactly once and last. */
function assertWellFormed(t: ExecutionContext, events: JobEvent[], after = 0): void {
  t.deepEqual(events.map((e) => e.id), events.map((_, i) => after + i + 1));
  t.is(events.filter((e) => e.event === "end").length, 1);
  t.is(events.at(-1)?.event, "end");
}

const statusOp = async (_op: unknown, job: Job): Promise<void> => {
  job.narrate("check_status", "Checking the status.", { target: "everything" });
  job.progress("check_status", null, 1, 2, "steps");
  job.data("status", { hives: [] });
};

const jobStatus = async (url: string, id: string): Promise<JobSummary | undefined> =>
  ((await call(url, "GET", "/v1/jobs")).json as { jobs: JobSummary[] }).jobs.find((j) => j.job_id === id);
const waitEnded = (url: string, id: string) =>
  waitFor(`${id} to end`, async () => (await jobStatus(url, id))?.finished_at !== null);

// ---- creating jobs ---------------------------------------------------------------------------------

test("POST /v1/jobs answers 201 with the job id, its sse_url and a generated correlation id", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const res = await post(url, { operation: "status" });
  t.is(res.status, 201);
  t.deepEqual(Object.keys(res.json).sort(), ["job_id", "sse_url"]);
  t.regex(res.json.job_id, /^job-[A-Za-z0-9_-]{6,64}$/);
  t.regex(res.json.job_id, JOB_ID_PATTERN);
  t.is(res.json.sse_url, `/v1/jobs/${res.json.job_id}/stream`);
  t.regex(String(res.headers["x-correlation-id"]), /^corr-[A-Za-z0-9_-]+$/);
  const again = await post(url, { operation: "status" });
  t.not(again.json.job_id, res.json.job_id);
  t.not(again.headers["x-correlation-id"], res.headers["x-correlation-id"]);
});

test("the body is parsed as JSON whatever the Content-Type says", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const body = '{"operation":"status"}';
  for (const type of ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream", undefined]) {
    const res = await call(url, "POST", "/v1/jobs", { body, headers: type ? { "content-type": type } : {} });
    t.is(res.status, 201, `content-type ${type}`);
    t.regex(res.json.job_id, JOB_ID_PATTERN);
  }
});

test("bad bodies are refused before any job exists, with the contract's error body", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp, infer: statusOp });
  const cases: [string, number, string, string][] = [
    ["{", 400, "INVALID_JSON", ""],
    ["", 400, "INVALID_JSON", ""],
    ["[1,2]", 400, "INVALID_REQUEST", "body"],
    ['"status"', 400, "INVALID_REQUEST", "body"],
    ["{}", 400, "UNKNOWN_OPERATION", "infer"],
    ['{"operation":"model_list"}', 400, "UNKNOWN_OPERATION", "status"],
    ['{"operation":"infer","prompt":"x","max_tokens":"5"}', 400, "INVALID_REQUEST", "max_tokens"],
  ];
  for (const [body, status, code, mention] of cases) {
    const res = await call(url, "POST", "/v1/jobs", { body, headers: { "content-type": "application/json" } });
    t.is(res.status, status, body);
    t.deepEqual(Object.keys(res.json), ["error"]);
    t.deepEqual(Object.keys(res.json.error).sort(), ["code", "message"]);
    t.is(res.json.error.code, code, body);
    t.true(res.json.error.message.length > 0);
    t.true(res.json.error.message.includes(mention), res.json.error.message);
  }
  const listed = (await call(url, "POST", "/v1/jobs", { body: '{"operation":"nope"}' })).json.error.message as string;
  t.true(listed.includes("status") && listed.includes("infer") && listed.includes("nope"), listed);
  t.deepEqual((await call(url, "GET", "/v1/jobs")).json, { jobs: [] });
});

test("a body over 1 MiB is 413 PAYLOAD_TOO_LARGE, declared or streamed; exactly 1 MiB is fine", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const head = '{"operation":"status","pad":"';
  const exact = head + "x".repeat(MAX_BODY_BYTES - head.length - 2) + '"}';
  t.is(Buffer.byteLength(exact), 1024 * 1024);
  t.is((await call(url, "POST", "/v1/jobs", { body: exact })).status, 201);
  const over = head + "x".repeat(MAX_BODY_BYTES - head.length - 1) + '"}';
  const declared = await call(url, "POST", "/v1/jobs", { body: over });
  t.is(declared.status, 413);
  t.is(declared.json.error.code, "PAYLOAD_TOO_LARGE");
  // No Content-Length: the limit is enforced while reading.
  const chunks = function* () {
    for (let i = 0; i < 40; i++) yield Buffer.alloc(64 * 1024, 0x20);
  };
  const streamed = await call(url, "POST", "/v1/jobs", { body: Readable.from(chunks()) });
  t.is(streamed.status, 413);
  t.is(streamed.json.error.code, "PAYLOAD_TOO_LARGE");
  t.is((await call(url, "GET", "/health")).status, 200);
  // A tier forwarding its own job (X-Parent-Job-ID) may add a few bytes of pins to a body that fit at the first tier.
  const pinned = head + "x".repeat(MAX_BODY_BYTES - head.length + 100) + '"}';
  t.is((await call(url, "POST", "/v1/jobs", { body: pinned, headers: { "x-parent-job-id": "job-parent0001" } })).status, 201);
  t.is((await call(url, "POST", "/v1/jobs", { body: pinned })).status, 413);
  const huge = head + "x".repeat(2 * MAX_BODY_BYTES) + '"}';
  t.is((await call(url, "POST", "/v1/jobs", { body: huge, headers: { "x-parent-job-id": "job-parent0001" } })).status, 413);
});

// ---- streams ---------------------------------------------------------------------------------------

test("a late subscriber gets every event from the first, end exactly once and last, then the stream closes", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const { json } = await post(url, { operation: "status" }, { "x-correlation-id": "corr-late-1" });
  await waitEnded(url, json.job_id);
  const first = await readAll(url, json.sse_url);
  t.is(first.status, 200);
  t.is(first.headers["content-type"], "text/event-stream");
  t.is(first.headers["cache-control"], "no-cache, no-transform");
  t.is(first.headers["x-correlation-id"], "corr-late-1");
  t.deepEqual(first.events.map((e) => e.event), ["narration", "progress", "data", "end"]);
  assertWellFormed(t, first.events);
  for (const e of first.events) {
    t.is(e.data.job_id, json.job_id);
    t.is(e.data.correlation_id, "corr-late-1");
    t.deepEqual(e.data.path, [json.job_id]);
  }
  const end = first.events.at(-1);
  t.deepEqual(end?.data, { job_id: json.job_id, correlation_id: "corr-late-1", path: [json.job_id], status: "completed" });
  const narration = first.events[0];
  t.like(narration?.data, { actor: "llm-worker-rbee", node: null, action: "check_status", target: "everything", human: "Checking the status.", level: "info" });
  t.like(first.events[1]?.data, { action: "check_status", target: null, done: 1, total: 2, unit: "steps" });
  // The frames on the wire: id, event and one data line each.
  t.regex(first.raw, /^: ping\n\nid: 1\nevent: narration\ndata: \{[^\n]*\}\n\nid: 2\nevent: progress\n/);
  const second = await readAll(url, json.sse_url);
  t.deepEqual(second.events, first.events);
});

test("two subscribers of a live job read identical streams; the replayed part is not repeated", async (t) => {
  const release = gate();
  const { url } = await startJobServer(t, {
    infer: async (_op, job) => {
      job.narrate("infer", "Starting.");
      job.token("one");
      await release.wait;
      for (const w of [" two", " three"]) job.token(w);
      return { finish_reason: "stop", usage: { prompt_tokens: 1, completion_tokens: 3 } };
    },
  });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const a = await openStream(url, json.sse_url);
  await waitFor("a's replay", () => a.events.length === 2);
  const b = await openStream(url, json.sse_url);
  await waitFor("b's replay", () => b.events.length === 2);
  release.open();
  await Promise.all([a.done, b.done]);
  assertWellFormed(t, a.events);
  t.deepEqual(b.events, a.events);
  t.deepEqual(a.events.filter((e) => e.event === "token").map((e) => (e.data as { text: string; index: number }).index), [0, 1, 2]);
  t.like(a.events.at(-1)?.data, { status: "completed", finish_reason: "stop", usage: { prompt_tokens: 1, completion_tokens: 3 } });
});

test("Last-Event-ID and ?last_event_id= resume after that event", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const { json } = await post(url, { operation: "status" });
  await waitEnded(url, json.job_id);
  const ids = async (path: string, headers: Record<string, string> = {}) => (await readAll(url, path, headers)).events.map((e) => e.id);
  t.deepEqual(await ids(json.sse_url, { "last-event-id": "2" }), [3, 4]);
  t.deepEqual(await ids(`${json.sse_url}?last_event_id=1`), [2, 3, 4]);
  t.deepEqual(await ids(`${json.sse_url}?last_event_id=1`, { "last-event-id": "3" }), [4]);
  t.deepEqual(await ids(json.sse_url, { "last-event-id": "nonsense" }), [1, 2, 3, 4]);
  // Resuming after the last event of a finished job: nothing more to send, so the stream closes.
  const after = await readAll(url, json.sse_url, { "last-event-id": "4" });
  t.is(after.status, 200);
  t.deepEqual(after.events, []);
});

test("resuming a live job delivers each later event once", async (t) => {
  const release = gate();
  const { url } = await startJobServer(t, {
    infer: async (_op, job) => {
      for (const w of ["a", "b", "c"]) job.token(w);
      await release.wait;
      for (const w of ["d", "e"]) job.token(w);
    },
  });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const r = await openStream(url, json.sse_url, { "last-event-id": "2" });
  await waitFor("the replay", () => r.events.length === 1);
  release.open();
  await r.done;
  t.deepEqual(r.events.map((e) => e.id), [3, 4, 5, 6]);
  t.deepEqual(r.events.map((e) => (e.event === "token" ? e.data.text : e.event)), ["c", "d", "e", "end"]);
});

test("a silent job's stream carries `: ping` comments", async (t) => {
  const release = gate();
  const { url } = await startJobServer(t, { infer: async () => release.wait }, { pingIntervalMs: 30 });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const r = await openStream(url, json.sse_url);
  await waitFor("three pings", () => r.pings >= 3);
  t.regex(r.raw, /^(: ping\n\n){3}/);
  release.open();
  await r.done;
  t.is(r.events.at(-1)?.event, "end");
});

// ---- cancel ----------------------------------------------------------------------------------------

test("DELETE answers 202 cancelling, the stream ends cancelled with CANCELLED; then 409 JOB_FINISHED", async (t) => {
  const { url } = await startJobServer(t, {
    infer: async (_op, job) => {
      job.narrate("infer", "Waiting for a cancel.");
      return untilCancelled(job);
    },
  });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const r = await openStream(url, json.sse_url);
  await waitFor("the narration", () => r.events.length === 1);
  t.is((await jobStatus(url, json.job_id))?.status, "running");
  const del = await call(url, "DELETE", `/v1/jobs/${json.job_id}`);
  t.is(del.status, 202);
  t.deepEqual(del.json, { job_id: json.job_id, status: "cancelling" });
  await r.done;
  assertWellFormed(t, r.events);
  const end = r.events.at(-1);
  t.is(end?.event, "end");
  t.like(end?.data, { status: "cancelled", error: { code: "CANCELLED" } });
  t.truthy((end?.data as { error: { message: string } }).error.message);
  t.true("timing" in (end?.data ?? {}));
  const summary = await jobStatus(url, json.job_id);
  t.is(summary?.status, "cancelled");
  t.truthy(summary?.finished_at);
  const again = await call(url, "DELETE", `/v1/jobs/${json.job_id}`);
  t.is(again.status, 409);
  t.is(again.json.error.code, "JOB_FINISHED");
});

test("a handler that ignores the cancel is ended cancelled after the grace period", async (t) => {
  const never = gate();
  t.teardown(never.open);
  const { url } = await startJobServer(t, { infer: async () => never.wait }, { registry: { cancelGraceMs: 50 } });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  t.is((await call(url, "DELETE", `/v1/jobs/${json.job_id}`)).status, 202);
  const r = await readAll(url, json.sse_url);
  t.like(r.events.at(-1)?.data, { status: "cancelled", error: { code: "CANCELLED" } });
  // The handler finishing later changes nothing.
  never.open();
  await new Promise((resolve) => setImmediate(resolve));
  t.is((await jobStatus(url, json.job_id))?.status, "cancelled");
});

test("unknown job ids are 404 JOB_NOT_FOUND on stream and DELETE; unknown routes 404", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  for (const [method, path] of [["GET", "/v1/jobs/job-doesnotexist/stream"], ["DELETE", "/v1/jobs/job-doesnotexist"]] as const) {
    const res = await call(url, method, path);
    t.is(res.status, 404);
    t.is(res.json.error.code, "JOB_NOT_FOUND");
    t.true(res.json.error.message.includes("job-doesnotexist"));
  }
  const nowhere = await call(url, "GET", "/v2/nothing");
  t.is(nowhere.status, 404);
  t.is(nowhere.json.error.code, "NOT_FOUND");
});

// ---- listing, health, auth, correlation ----------------------------------------------------------

test("GET /v1/jobs lists every job newest first with all seven fields", async (t) => {
  const release = gate();
  t.teardown(release.open);
  const { url } = await startJobServer(t, { status: statusOp, infer: async () => release.wait });
  const a = (await post(url, { operation: "status" }, { "x-parent-job-id": "job-parent123", "x-correlation-id": "corr-listing" })).json;
  await waitEnded(url, a.job_id);
  const b = (await post(url, { operation: "infer", prompt: "x" })).json;
  const { jobs } = (await call(url, "GET", "/v1/jobs")).json as { jobs: JobSummary[] };
  t.deepEqual(jobs.map((j) => j.job_id), [b.job_id, a.job_id]);
  const fields = ["correlation_id", "created_at", "finished_at", "job_id", "operation", "parent_job_id", "status"];
  for (const j of jobs) t.deepEqual(Object.keys(j).sort(), fields);
  const [running, done] = jobs;
  t.like(done, { job_id: a.job_id, operation: "status", status: "completed", correlation_id: "corr-listing", parent_job_id: "job-parent123" });
  t.like(running, { job_id: b.job_id, operation: "infer", status: "running", parent_job_id: null, finished_at: null });
  t.regex(running?.correlation_id ?? "", /^corr-/);
  for (const iso of [done?.created_at, done?.finished_at, running?.created_at]) t.is(new Date(iso ?? "").toISOString(), iso ?? "");
  t.true(Date.parse(done?.finished_at ?? "") >= Date.parse(done?.created_at ?? ""));
});

test("/health has the contract's shape", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const res = await call(url, "GET", "/health");
  t.is(res.status, 200);
  t.deepEqual(res.json, { status: "ok", service: "llm-worker-rbee", version: "1.2.3" });
});

test("with a token every route but /health needs the bearer, else 401 UNAUTHORIZED", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp }, { token: "s3cret-token" });
  t.deepEqual((await call(url, "GET", "/health")).json, { status: "ok", service: "llm-worker-rbee", version: "1.2.3" });
  for (const auth of [undefined, "Bearer wrong", "Bearer s3cret-tokenx", "s3cret-token", "Basic s3cret-token", "Bearer "]) {
    for (const [method, path] of [["GET", "/v1/jobs"], ["POST", "/v1/jobs"], ["GET", "/v1/info"], ["GET", "/metrics"], ["GET", "/v1/jobs/job-x/stream"]] as const) {
      const res = await call(url, method, path, { body: method === "POST" ? '{"operation":"status"}' : undefined, headers: auth ? { authorization: auth } : {} } as never);
      t.is(res.status, 401, `${method} ${path} with ${auth}`);
      t.is(res.json.error.code, "UNAUTHORIZED");
    }
  }
  const ok = { authorization: "Bearer s3cret-token" };
  t.is((await post(url, { operation: "status" }, ok)).status, 201);
  t.is((await call(url, "GET", "/v1/info", { headers: ok })).status, 200);
  t.is((await call(url, "GET", "/metrics", { headers: ok })).status, 200);
});

test("without a token, Authorization is ignored", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  t.is((await post(url, { operation: "status" }, { authorization: "Bearer sk-whatever" })).status, 201);
});

test("X-Correlation-ID is taken from the request, returned, and carried by every event", async (t) => {
  const { url } = await startJobServer(t, { status: statusOp });
  const res = await post(url, { operation: "status" }, { "x-correlation-id": "corr-from-client.42" });
  t.is(res.headers["x-correlation-id"], "corr-from-client.42");
  await waitEnded(url, res.json.job_id);
  const r = await readAll(url, res.json.sse_url);
  t.is(r.events.length, 4);
  for (const e of r.events) t.is(e.data.correlation_id, "corr-from-client.42");
  // A header that could break logs or headers is replaced by a generated id.
  const odd = await post(url, { operation: "status" }, { "x-correlation-id": "has spaces and ; semicolons" });
  t.regex(String(odd.headers["x-correlation-id"]), /^corr-[A-Za-z0-9]+$/);
});

test("a failing handler ends the job failed with its error code; anything else is INTERNAL", async (t) => {
  const { url } = await startJobServer(t, {
    infer: async (op) => {
      if (op.prompt === "coded") throw new RbeeError("MODEL_NOT_FOUND", "No model x in the catalog.");
      throw new Error("boom");
    },
  });
  for (const [prompt, code, message] of [["coded", "MODEL_NOT_FOUND", "No model x in the catalog."], ["plain", "INTERNAL", "boom"]]) {
    const { json } = await post(url, { operation: "infer", prompt });
    const r = await readAll(url, json.sse_url);
    assertWellFormed(t, r.events);
    t.like(r.events.at(-1)?.data, { status: "failed", error: { code, message } });
    t.is((await jobStatus(url, json.job_id))?.status, "failed");
  }
});

test("a subscriber hanging up mid-stream disturbs neither the job nor another subscriber", async (t) => {
  const release = gate();
  const { url, server } = await startJobServer(t, {
    infer: async (_op, job) => {
      job.token("first");
      await release.wait;
      job.token(" second");
      return { finish_reason: "length" };
    },
  });
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const a = await openStream(url, json.sse_url);
  const b = await openStream(url, json.sse_url);
  await waitFor("both to see the first token", () => a.events.length === 1 && b.events.length === 1);
  t.is(server.openStreams, 2);
  a.destroy();
  await waitFor("the server to drop the hung-up stream", () => server.openStreams === 1);
  t.is((await jobStatus(url, json.job_id))?.status, "running");
  release.open();
  await b.done;
  assertWellFormed(t, b.events);
  t.like(b.events.at(-1)?.data, { status: "completed", finish_reason: "length" });
  t.is(a.events.length, 1);
  await waitFor("no stream left open", () => server.openStreams === 0);
});

test("closing the server cancels running jobs and their subscribers still read the end", async (t) => {
  const server = new JobServer({
    service: "rbee-hive", version: "1.2.3", info: () => ({}), logger: quiet(),
    operations: { infer: async (_op: unknown, job: Job) => untilCancelled(job) },
  });
  const url = await server.listen(0);
  const { json } = await post(url, { operation: "infer", prompt: "x" });
  const r = await openStream(url, json.sse_url);
  await waitFor("the stream to open", () => r.pings >= 1);
  await server.close(2000);
  await r.done;
  t.like(r.events.at(-1)?.data, { status: "cancelled", error: { code: "CANCELLED", message: "The daemon is shutting down." } });
  t.is(server.openStreams, 0);
});

// ---- the job and the registry, in process ----------------------------------------------------

test("10,000 jobs through a registry keep at most maxFinishedJobs finished ones; running ones stay", (t) => {
  const registry = new JobRegistry({ actor: "queen-rbee", maxFinishedJobs: 1000 });
  t.teardown(() => registry.dispose());
  const running = Array.from({ length: 3 }, () => registry.create({ operation: "infer", correlationId: "corr-keep" }));
  const ids: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const job = registry.create({ operation: "status", correlationId: `corr-${i}` });
    job.data("status", { i });
    job.end("completed");
    ids.push(job.id);
    if (registry.size > 1000 + running.length) return t.fail(`${registry.size} jobs kept after ${i + 1}`);
  }
  t.is(registry.size, 1000 + running.length);
  t.is(registry.get(ids[0] ?? ""), undefined);
  t.is(registry.get(ids[8999] ?? ""), undefined);
  t.truthy(registry.get(ids[9000] ?? ""));
  t.truthy(registry.get(ids[9999] ?? ""));
  for (const job of running) t.is(registry.get(job.id), job);
  t.is(registry.list().filter((j) => j.status === "completed").length, 1000);
  t.is(registry.list()[0]?.job_id, ids[9999]);
});

test("finished jobs expire after their TTL on an injected clock; running jobs never do", (t) => {
  let now = 1_000_000;
  const registry = new JobRegistry({ actor: "rbee-hive", jobTtlSeconds: 10, now: () => now });
  t.teardown(() => registry.dispose());
  const running = registry.create({ operation: "infer", correlationId: "corr-a" });
  const done = registry.create({ operation: "status", correlationId: "corr-b" });
  done.end("completed");
  now += 9_999;
  registry.collect();
  t.is(registry.get(done.id), done);
  now += 1;
  registry.collect();
  t.is(registry.get(done.id), undefined);
  now += 1e9;
  registry.collect();
  t.is(registry.get(running.id), running);
  t.is(running.status, "queued");
  // Expiry counts from the end, not the creation.
  running.end("completed");
  registry.collect();
  t.is(registry.get(running.id), running);
});

test("finished jobs past the byte budget are collected oldest first", (t) => {
  const registry = new JobRegistry({ actor: "rbee-hive", maxFinishedBytes: 3000 });
  t.teardown(() => registry.dispose());
  const jobs = Array.from({ length: 5 }, (_, i) => {
    const job = registry.create({ operation: "status", correlationId: `corr-${i}` });
    job.data("blob", "x".repeat(800));
    job.end("completed");
    return job;
  });
  t.true(jobs.every((j) => j.bytes > 800 && j.bytes < 1500));
  const kept = jobs.filter((j) => registry.get(j.id));
  t.true(kept.length >= 2 && kept.length < 5);
  t.true(kept.reduce((n, j) => n + j.bytes, 0) <= 3000);
  t.is(kept.at(-1), jobs[4]);
  t.is(registry.get(jobs[0]?.id ?? ""), undefined);
});

test("a job ends exactly once; infer timing counts from the job's own creation", (t) => {
  let now = 5000;
  const job = new Job({ id: "job-timing1", operation: "infer", correlationId: "corr-t", actor: "llm-worker-rbee", now: () => now });
  now = 5100;
  job.token("a");
  now = 5150;
  job.token("b");
  now = 5300;
  job.token("c");
  now = 5400;
  t.true(job.end("completed", { finish_reason: "length", usage: { prompt_tokens: 2, completion_tokens: 3 } }));
  t.false(job.end("failed", { error: new RbeeError("INTERNAL", "late") }));
  t.false(job.fail("TIMEOUT", "late"));
  job.token("after the end");
  job.narrate("late", "Too late.");
  t.is(job.events.length, 4);
  t.is(job.status, "completed");
  t.is(job.finishedAt, 5400);
  t.deepEqual(job.events.at(-1)?.event.data, {
    job_id: "job-timing1", correlation_id: "corr-t", path: ["job-timing1"], status: "completed", finish_reason: "length",
    usage: { prompt_tokens: 2, completion_tokens: 3 }, timing: { ttft_ms: 100, total_ms: 400, tokens_per_s: 10 },
  });
  // One token: speed from that token to the end; no token: ttft is the whole run; non-infer jobs carry no timing.
  const one = new Job({ id: "job-timing2", operation: "infer", correlationId: "c", actor: "a", now: () => now });
  now += 50;
  one.token("x");
  now += 250;
  one.end("completed");
  t.deepEqual(one.timing(), { ttft_ms: 50, total_ms: 300, tokens_per_s: 4 });
  const none = new Job({ id: "job-timing3", operation: "infer", correlationId: "c", actor: "a", now: () => now });
  now += 70;
  none.end("failed", { error: new RbeeError("CONTEXT_OVERFLOW", "too long") });
  t.like(none.events.at(-1)?.event.data, { status: "failed", error: { code: "CONTEXT_OVERFLOW", message: "too long" }, timing: { ttft_ms: 70, total_ms: 70, tokens_per_s: 0 } });
  const plain = new Job({ id: "job-plain1", operation: "status", correlationId: "c", actor: "a" });
  plain.end("completed");
  t.false("timing" in (plain.events[0]?.event.data ?? {}));
});

test("listeners see the final status when end arrives, and one subscribing then gets no duplicate", (t) => {
  const job = new Job({ id: "job-listen1", operation: "status", correlationId: "c", actor: "a" });
  job.narrate("x", "One.");
  const seen: string[] = [];
  const late: number[] = [];
  job.subscribe(0, (s) => {
    seen.push(`${s.event.event}:${job.status}`);
    // Subscribing from inside a delivery replays this event; it must not also arrive live.
    if (s.event.event === "end") job.subscribe(0, (x) => late.push(x.event.id));
  });
  job.subscribe(job.lastEventId, () => {
    throw new Error("a broken subscriber");
  });
  job.end("completed");
  t.deepEqual(seen, ["narration:queued", "end:completed"]);
  t.deepEqual(late, [1, 2]);
});

test("run(): a cancel ends the job cancelled, whatever the unwinding handler throws", async (t) => {
  const registry = new JobRegistry({ actor: "rbee-hive", cancelGraceMs: 10_000 });
  t.teardown(() => registry.dispose());
  const throwing = [
    (job: Job) => job.signal.reason as unknown,
    () => new RbeeError("CANCELLED", "Downstream said cancelled."),
    () => Object.assign(new Error("This operation was aborted"), { name: "AbortError" }),
  ];
  for (const make of throwing) {
    const job = registry.create({ operation: "infer", correlationId: "c" });
    const done = registry.run(job, async (j) => {
      await new Promise((resolve) => j.signal.addEventListener("abort", resolve, { once: true }));
      throw make(j);
    });
    t.true(job.cancel("Stop."));
    await done;
    t.is(job.status, "cancelled");
    t.like(job.events.at(-1)?.event.data, { status: "cancelled", error: { code: "CANCELLED" } });
  }
  // Cancelled before the handler even ran: the grace still applies.
  const quick = new JobRegistry({ actor: "rbee-hive", cancelGraceMs: 20 });
  t.teardown(() => quick.dispose());
  const early = quick.create({ operation: "infer", correlationId: "c" });
  early.cancel();
  void quick.run(early, () => new Promise(() => {}));
  await waitFor("the grace to end it", () => early.finished);
  t.is(early.status, "cancelled");
  t.true(early.events.at(-1)?.event.data && (early.events.at(-1)?.event.data as { error: unknown }).error !== undefined);
  t.true(new CancelledError() instanceof RbeeError);
});

test("job.stream() replays, follows live events to the end, and stops early on abort", async (t) => {
  const release = gate();
  const { server } = await startJobServer(t, {
    infer: async (_op, job) => {
      job.token("a");
      await release.wait;
      job.token("b");
    },
  });
  const job = server.createJob({ operation: "infer", prompt: "x", model: "rbee-tiny", max_tokens: 1, temperature: 0, ignore_eos: false }, "corr-inproc");
  const seen: string[] = [];
  const reading = (async () => {
    for await (const e of job.stream()) seen.push(e.event === "token" ? e.data.text : e.event);
  })();
  await waitFor("the first token", () => seen.length === 1);
  const abort = new AbortController();
  const partial: number[] = [];
  const stopped = (async () => {
    for await (const e of job.stream(0, abort.signal)) partial.push(e.id);
  })();
  await waitFor("the replay", () => partial.length === 1);
  abort.abort();
  await stopped;
  release.open();
  await reading;
  t.deepEqual(seen, ["a", "b", "end"]);
  t.deepEqual(partial, [1]);
  t.is(job.correlationId, "corr-inproc");
});

test("the logger writes one JSON line per own narration and per job end, never relayed ones", async (t) => {
  const dir = await tempDir(t, "rbee-log-");
  const logger = new Logger("rbee-hive", "localhost", `${dir}/hive.log`);
  const registry = new JobRegistry({ actor: "rbee-hive", node: "localhost", onEvent: logger.onJobEvent });
  t.teardown(() => registry.dispose());
  const job = registry.create({ operation: "status", correlationId: "corr-logged", parentJobId: "job-queen1" });
  job.narrate("look_around", "Looking around.", { target: "gpu:0" });
  job.relay({ id: 1, event: "narration", data: { job_id: "job-worker1", correlation_id: "corr-logged", path: ["job-worker1"], actor: "llm-worker-rbee", node: "w1", action: "load", target: null, human: "Loading.", level: "info", ts: new Date().toISOString() } });
  job.token("not logged");
  job.end("failed", { error: new RbeeError("TIMEOUT", "Too slow.") });
  await logger.close();
  const lines = (await readFile(`${dir}/hive.log`, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  t.is(lines.length, 2);
  t.like(lines[0], { service: "rbee-hive", node: "localhost", level: "info", action: "look_around", target: "gpu:0", human: "Looking around.", job_id: job.id, correlation_id: "corr-logged", parent_job_id: "job-queen1" });
  t.like(lines[1], { service: "rbee-hive", level: "error", action: "job_end", job_id: job.id, correlation_id: "corr-logged", status: "failed" });
  for (const l of lines) t.is(new Date(String(l["ts"])).toISOString(), String(l["ts"]));
  t.deepEqual(Object.keys(lines[0] ?? {}).slice(0, 2), ["ts", "service"]);
});
