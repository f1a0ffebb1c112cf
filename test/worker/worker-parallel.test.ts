import test from "ava";
import type { JobEvent } from "../../shared/protocol.js";
import { tinyModel } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { collect, end, info, ready, run, startWorker, text, tokens } from "./helpers.js";

test("--parallel 2 runs two jobs at once; a third waits its turn; past --max-queue a job ends QUEUE_FULL", async (t) => {
  const model = await tinyModel(t);
  const w = await startWorker(t, ["--model", model, "--device", "cpu", "--parallel", "2", "--max-queue", "1", "--context-size", "512"]);
  t.like(await ready(w), { parallel: 2, busy_slots: 0 });

  // the same greedy job alone, for comparison with its parallel runs
  const op = { operation: "infer", prompt: "honey", temperature: 0, max_tokens: 40, ignore_eos: true };
  const alone = text(await run(w, op));

  const long = { ...op, max_tokens: 1_000_000 };
  const a = await w.client.create(long);
  const b = await w.client.create(long);
  const streams = new Map<string, JobEvent[]>([[a.job_id, []], [b.job_id, []]]);
  const readers = [...streams].map(async ([id, events]) => {
    for await (const e of w.client.stream(id)) events.push(e);
  });
  const tokensOf = (id: string) => (streams.get(id) ?? []).filter((e) => e.event === "token").length;
  // both stream at the same time: each has tokens while the other is still running
  await waitFor(() => `both jobs to stream (tokens: ${tokensOf(a.job_id)}, ${tokensOf(b.job_id)})`, () => tokensOf(a.job_id) > 5 && tokensOf(b.job_id) > 5, 30_000);
  t.like(await info(w), { state: "busy", busy_slots: 2 });

  const c = await w.client.create(op);
  const cEvents: JobEvent[] = [];
  const cReader = (async () => {
    for await (const e of w.client.stream(c.job_id)) cEvents.push(e);
  })();
  await waitFor("the third job to queue", () => cEvents.some((e) => e.event === "narration" && e.data.action === "queued"), 30_000);
  const told = cEvents.find((e) => e.event === "narration" && e.data.action === "queued");
  t.regex(told?.event === "narration" ? told.data.human : "", /place 1 in line \(all 2 slot\(s\) are busy\)/);

  const d = await run(w, op);
  t.is(end(d).status, "failed");
  t.is(end(d).error?.code, "QUEUE_FULL");
  t.regex(end(d).error?.message ?? "", /--max-queue 1/);

  await w.client.cancel(a.job_id);
  await cReader;
  t.is(end(cEvents).status, "completed");
  t.is(text(cEvents), alone);
  await w.client.cancel(b.job_id);
  await Promise.all(readers);
  t.is(end(streams.get(a.job_id) ?? []).status, "cancelled");
  t.is(end(streams.get(b.job_id) ?? []).status, "cancelled");

  // two short jobs at once both complete with the text they make alone
  const [x, y] = await Promise.all([run(w, op), run(w, op)]);
  t.is(end(x).status, "completed");
  t.is(end(y).status, "completed");
  t.is(tokens(x).length, 40);
  t.is(text(x), alone);
  t.is(text(y), alone);
  t.like(await info(w), { state: "ready", busy_slots: 0, queued: 0 });
  t.deepEqual(await collect(w, c.job_id), cEvents);
});
