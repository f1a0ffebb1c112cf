import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer, connect, type AddressInfo, type Socket } from "node:net";
import test, { type ExecutionContext } from "ava";
import { request } from "undici";
import { RbeeError, type ErrorCode } from "../../shared/errors.js";
import { Job } from "../../shared/job.js";
import { JobClient, follow, forward } from "../../shared/job-client.js";
import type { OperationHandlers } from "../../shared/job-server.js";
import type { InferOperation, JobEvent, JobSummary } from "../../shared/protocol.js";
import { parseEventStream } from "../../shared/sse.js";
import { gate, startJobServer, untilCancelled } from "../_helpers/jobs.js";
import { freePort } from "../_helpers/process.js";
import { waitFor } from "../_helpers/wait.js";

// ---- helpers -----------------------------------------------------------------------------------

const gates = new Map<string, ReturnType<typeof gate>>();

/** The downstream daemon (a worker): what it does depends on the prompt. */
const worker = (): OperationHandlers<"infer"> => ({
  infer: async (op: InferOperation, job: Job) => {
    job.narrate("infer", "Generating.", { target: op.model });
    const prompt = op.prompt ?? "";
    if (prompt === "fail") throw new RbeeError("MODEL_NOT_FOUND", "No model zzz in the catalog.");
    if (prompt === "wait") return untilCancelled(job);
    const words = ["alpha", " beta", " gamma", " delta", " épsilon", " 🐝"];
    const held = gates.get(prompt);
    for (const [i, w] of words.entries()) {
      if (i === 3 && held) await held.wait;
      job.token(w);
    }
    return { finish_reason: "length", usage: { prompt_tokens: 2, completion_tokens: words.length } };
  },
});

/** The upstream daemon (a hive): forwards every infer to `client`. */
const forwarder = (client: JobClient, created: string[] = []): OperationHandlers<"infer"> => ({
  infer: async (op: InferOperation, job: Job) => {
    job.narrate("forward_job", "Sending the job downstream.", { target: client.baseUrl });
    return forward(job, client, op, { onCreated: (id) => created.push(id) });
  },
});

async function post(url: string, op: unknown, headers: Record<string, string> = {}): Promise<{ job_id: string; sse_url: string }> {
  const res = await request(`${url}/v1/jobs`, { method: "POST", body: JSON.stringify(op), headers });
  if (res.statusCode !== 201) throw new Error(`POST answered ${res.statusCode}: ${await res.body.text()}`);
  return (await res.body.json()) as { job_id: string; sse_url: string };
}
async function events(url: string, jobId: string): Promise<JobEvent[]> {
  const res = await request(`${url}/v1/jobs/${jobId}/stream`);
  const out: JobEvent[] = [];
  for await (const e of parseEventStream(res.body)) out.push(e);
  return out;
}
async function jobs(url: string): Promise<JobSummary[]> {
  const res = await request(`${url}/v1/jobs`);
  return ((await res.body.json()) as { jobs: JobSummary[] }).jobs;
}
const endOf = (list: JobEvent[]): Record<string, unknown> => (list.at(-1)?.event === "end" ? (list.at(-1)?.data as unknown as Record<string, unknown>) : {});

async function pair(t: ExecutionContext, target?: (downUrl: string) => Promise<string>): Promise<{ up: string; down: string; created: string[] }> {
  const down = (await startJobServer(t, worker(), { service: "llm-worker-rbee" })).url;
  const created: string[] = [];
  const client = new JobClient(target ? await target(down) : down, { unreachableCode: "WORKER_CRASHED", label: "the worker" });
  const up = (await startJobServer(t, forwarder(client, created), { service: "rbee-hive" })).url;
  return { up, down, created };
}

// ---- forwarding ------------------------------------------------------------------------------------

test("relayed events keep the downstream job id, get path [up, down], and share the correlation id", async (t) => {
  const { up, down } = await pair(t);
  const upJob = await post(up, { operation: "infer", prompt: "count", max_tokens: 6 }, { "x-correlation-id": "corr-forward-1" });
  const upEvents = await events(up, upJob.job_id);
  const downJob = (await jobs(down))[0];
  if (!downJob) return t.fail("no downstream job");
  const downEvents = await events(down, downJob.job_id);

  t.deepEqual(upEvents.map((e) => e.id), upEvents.map((_, i) => i + 1));
  t.is(upEvents.filter((e) => e.event === "end").length, 1);
  const [own, ...rest] = upEvents;
  t.like(own?.data, { job_id: upJob.job_id, path: [upJob.job_id], action: "forward_job", actor: "rbee-hive" });
  const relayed = rest.slice(0, -1);
  t.is(relayed.length, downEvents.length - 1);
  for (const [i, e] of relayed.entries()) {
    t.is(e.data.job_id, downJob.job_id);
    t.deepEqual(e.data.path, [upJob.job_id, downJob.job_id]);
    t.is(e.data.correlation_id, "corr-forward-1");
    // Everything but the path and the SSE id is the downstream event as it was.
    const original = downEvents[i];
    t.is(String(e.event), String(original?.event));
    t.deepEqual({ ...e.data, path: original?.data.path }, original?.data);
  }
  t.deepEqual(relayed.filter((e) => e.event === "token").map((e) => (e.event === "token" ? [e.data.index, e.data.text] : [])), [
    [0, "alpha"], [1, " beta"], [2, " gamma"], [3, " delta"], [4, " épsilon"], [5, " 🐝"],
  ]);
  for (const e of downEvents) t.deepEqual(e.data.path, [downJob.job_id]);

  // The downstream job records its parent and the same correlation id.
  t.like(downJob, { parent_job_id: upJob.job_id, correlation_id: "corr-forward-1", status: "completed", operation: "infer" });
  t.like((await jobs(up))[0], { job_id: upJob.job_id, parent_job_id: null, correlation_id: "corr-forward-1", status: "completed" });

  // The end is folded: the upstream's own, with finish_reason and usage copied, timing its own.
  const upEnd = endOf(upEvents) as { timing: { ttft_ms: number; total_ms: number; tokens_per_s: number } };
  const downEnd = endOf(downEvents) as typeof upEnd;
  t.like(upEnd, {
    job_id: upJob.job_id, correlation_id: "corr-forward-1", path: [upJob.job_id], status: "completed",
    finish_reason: "length", usage: { prompt_tokens: 2, completion_tokens: 6 },
  });
  t.false("error" in upEnd);
  // The upstream job was created before the downstream one and saw every token later: its times are no shorter.
  t.true(upEnd.timing.total_ms >= downEnd.timing.total_ms, JSON.stringify([upEnd.timing, downEnd.timing]));
  t.true(upEnd.timing.ttft_ms >= downEnd.timing.ttft_ms);
  t.true(upEnd.timing.tokens_per_s > 0);
});

test("a failed downstream job fails the upstream job with the same code", async (t) => {
  const { up } = await pair(t);
  const job = await post(up, { operation: "infer", prompt: "fail" });
  const list = await events(up, job.job_id);
  t.like(endOf(list), { job_id: job.job_id, status: "failed", error: { code: "MODEL_NOT_FOUND", message: "No model zzz in the catalog." } });
  t.is(list.filter((e) => e.event === "end").length, 1);
  t.true(list.some((e) => e.event === "narration" && e.data.path.length === 2 && e.data.action === "infer"));
});

test("a cancelled downstream job cancels the upstream job", async (t) => {
  const { up, down, created } = await pair(t);
  const job = await post(up, { operation: "infer", prompt: "wait" });
  await waitFor("the downstream job", () => created.length === 1);
  const del = await request(`${down}/v1/jobs/${created[0]}`, { method: "DELETE" });
  t.is(del.statusCode, 202);
  await del.body.dump();
  t.like(endOf(await events(up, job.job_id)), { status: "cancelled", error: { code: "CANCELLED" } });
  t.is((await jobs(up))[0]?.status, "cancelled");
});

test("DELETE on the upstream job reaches the downstream job", async (t) => {
  const { up, down, created } = await pair(t);
  const job = await post(up, { operation: "infer", prompt: "wait" });
  await waitFor("the downstream job to run", async () => (await jobs(down))[0]?.status === "running");
  const del = await request(`${up}/v1/jobs/${job.job_id}`, { method: "DELETE" });
  t.is(del.statusCode, 202);
  t.deepEqual(await del.body.json(), { job_id: job.job_id, status: "cancelling" });
  t.like(endOf(await events(up, job.job_id)), { status: "cancelled", error: { code: "CANCELLED" } });
  const downEvents = await events(down, created[0] ?? "");
  t.like(endOf(downEvents), { job_id: created[0], status: "cancelled", error: { code: "CANCELLED" } });
  t.like((await jobs(down))[0], { job_id: created[0], parent_job_id: job.job_id, status: "cancelled" });
});

test("a connection dropped mid-stream is resumed with Last-Event-ID, without loss or duplicates", async (t) => {
  const held = gate();
  gates.set("held", held);
  t.teardown(() => {
    held.open();
    gates.delete("held");
  });
  let dropped = false;
  const resumedFrom: number[] = [];
  const sockets = new Set<Socket>();
  // A TCP proxy that kills the first stream connection just before its second token frame.
  const proxy = (downUrl: string) =>
    new Promise<string>((resolve) => {
      const target = new URL(downUrl);
      const server = createNetServer((client) => {
        const upstream = connect(Number(target.port), target.hostname);
        sockets.add(client).add(upstream);
        let seen = "";
        client.on("data", (chunk: Buffer) => {
          const m = /last-event-id: (\d+)/i.exec(chunk.toString("latin1"));
          if (m) resumedFrom.push(Number(m[1]));
          upstream.write(chunk);
        });
        upstream.on("data", (chunk: Buffer) => {
          const before = seen.length;
          seen += chunk.toString("latin1");
          const second = [...seen.matchAll(/event: token/g)][1]?.index;
          if (dropped || !seen.includes("text/event-stream") || second === undefined) return void client.write(chunk);
          // Pass everything before the second token's frame, then kill the connection mid-stream.
          dropped = true;
          const cut = Math.max(0, seen.lastIndexOf("id: ", second) - before);
          client.write(chunk.subarray(0, cut), () => {
            client.destroy();
            upstream.destroy();
          });
        });
        for (const s of [client, upstream]) s.on("error", () => {}).on("close", () => (client.destroy(), upstream.destroy()));
      });
      server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
      t.teardown(() => {
        for (const s of sockets) s.destroy();
        server.close();
      });
    });
  const { up, down } = await pair(t, proxy);
  const job = await post(up, { operation: "infer", prompt: "held" });
  await waitFor("the drop and the resume", () => dropped && resumedFrom.length === 1);
  // The narration and the first token got through before the drop.
  t.is(resumedFrom[0], 2);
  held.open();
  const upEvents = await events(up, job.job_id);
  const tokens = upEvents.filter((e) => e.event === "token").map((e) => (e.event === "token" ? e.data.index : -1));
  t.deepEqual(tokens, [0, 1, 2, 3, 4, 5]);
  t.deepEqual(upEvents.map((e) => e.id), upEvents.map((_, i) => i + 1));
  t.like(endOf(upEvents), { status: "completed", usage: { completion_tokens: 6 } });
  // The relayed events are exactly the downstream's, in order.
  const downEvents = await events(down, (await jobs(down))[0]?.job_id ?? "");
  t.is(upEvents.length, downEvents.length + 1);
  const withoutPath = (e: JobEvent | undefined) => ({ event: e?.event, data: { ...e?.data, path: [] } });
  t.deepEqual(upEvents.slice(1, -1).map(withoutPath), downEvents.slice(0, -1).map(withoutPath));
});

test("an unreachable downstream ends the job with the configured code", async (t) => {
  const port = await freePort();
  for (const [code, expected] of [["WORKER_CRASHED", "WORKER_CRASHED"], [undefined, "HIVE_UNREACHABLE"]] as const) {
    const client = new JobClient(`http://127.0.0.1:${port}`, code ? { unreachableCode: code as ErrorCode } : {});
    const { url } = await startJobServer(t, forwarder(client), { service: "queen-rbee" });
    const job = await post(url, { operation: "infer", prompt: "x" });
    const list = await events(url, job.job_id);
    const end = endOf(list) as { status: string; error: { code: string; message: string } };
    t.is(end.status, "failed");
    t.is(end.error.code, expected);
    t.true(end.error.message.includes(`127.0.0.1:${port}`), end.error.message);
  }
});

// ---- the client itself -----------------------------------------------------------------------------

test("stream() gives up on a daemon that keeps hanging up, backing off between tries", async (t) => {
  let connections = 0;
  const server = createHttpServer((req, res) => {
    connections++;
    res.writeHead(200, { "content-type": "text/event-stream" });
    // One event, then hang up without `end`: the first time only, so later tries make no progress.
    res.end(connections === 1 ? ': ping\n\nid: 1\nevent: token\ndata: {"job_id":"job-x","correlation_id":"c","path":["job-x"],"text":"a","index":0}\n\n' : ": ping\n\n");
    void req;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => server.close());
  const client = new JobClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { unreachableCode: "HIVE_UNREACHABLE" });
  const got: JobEvent[] = [];
  const started = Date.now();
  const err = await t.throwsAsync(async () => {
    for await (const e of client.stream("job-x", { reconnects: 2 })) got.push(e);
  });
  t.true(err instanceof RbeeError);
  t.is((err as RbeeError).code, "HIVE_UNREACHABLE");
  t.is(got.length, 1);
  // The first try made progress; then 2 reconnects without any, waiting 200 then 400 ms: no busy loop.
  t.is(connections, 3);
  t.true(Date.now() - started >= 580, `${Date.now() - started} ms`);
});

test("stream() of a daemon that went away gives up with the unreachable code", async (t) => {
  const client = new JobClient(`http://127.0.0.1:${await freePort()}`, { unreachableCode: "WORKER_CRASHED" });
  const err = await t.throwsAsync(async () => {
    for await (const _ of client.stream("job-gone", { reconnects: 1 })) t.fail("no event expected");
  });
  t.is((err as RbeeError).code, "WORKER_CRASHED");
});

test("client calls turn error bodies into RbeeErrors with the daemon's code", async (t) => {
  const { url } = await startJobServer(t, worker(), { service: "llm-worker-rbee" });
  const client = new JobClient(`${url}/`);
  const bad = await t.throwsAsync(client.create({ operation: "infer", prompt: "x", temperature: 9 }));
  t.is((bad as RbeeError).code, "INVALID_REQUEST");
  t.true((bad as RbeeError).message.includes("temperature"));
  t.is(((await t.throwsAsync(client.create({ operation: "model_list" }))) as RbeeError).code, "UNKNOWN_OPERATION");
  t.is(((await t.throwsAsync(client.cancel("job-missing1"))) as RbeeError).code, "JOB_NOT_FOUND");
  const created = await client.create({ operation: "infer", prompt: "count" }, { correlationId: "corr-client-1", parentJobId: "job-parent99" });
  t.is(created.correlation_id, "corr-client-1");
  const seen: JobEvent[] = [];
  for await (const e of client.stream(created.job_id)) seen.push(e);
  t.is(seen.at(-1)?.event, "end");
  // A finished job: cancel is not an error (409 is accepted), the list shows it.
  await t.notThrowsAsync(client.cancel(created.job_id));
  t.like((await client.list())[0], { job_id: created.job_id, parent_job_id: "job-parent99", status: "completed" });
  const resumed: number[] = [];
  for await (const e of client.stream(created.job_id, { afterId: seen.length - 2 })) resumed.push(e.id);
  t.deepEqual(resumed, [seen.length - 1, seen.length]);
});

test("follow() stops at once with the reason of its abort signal", async (t) => {
  const { url } = await startJobServer(t, worker(), { service: "llm-worker-rbee" });
  const client = new JobClient(url);
  const created = await client.create({ operation: "infer", prompt: "wait" });
  const job = new Job({ id: "job-follower1", operation: "infer", correlationId: "corr-f", actor: "rbee-hive" });
  const abort = new AbortController();
  const following = follow(job, client, created.job_id, { abort: abort.signal });
  await waitFor("the relayed narration", () => job.events.length === 1);
  t.deepEqual(job.events[0]?.event.data.path, ["job-follower1", created.job_id]);
  const why = new RbeeError("WORKER_CRASHED", "The worker stopped answering.");
  abort.abort(why);
  t.is(await t.throwsAsync(following), why);
  await client.cancel(created.job_id);
});
