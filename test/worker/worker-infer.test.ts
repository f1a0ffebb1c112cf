import test from "ava";
import type { JobEvent } from "../../shared/protocol.js";
import { Cleanup } from "../_helpers/cleanup.js";
import { tinyModel } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { collect, end, info, post, ready, run, startWorker, text, tokens, type RunningWorker } from "./helpers.js";

// One worker with one slot and a small context, shared by serial tests (the queue tests need the slot to themselves).
const cleanup = new Cleanup();
let w: RunningWorker;

test.before(async () => {
  const model = await tinyModel(cleanup);
  w = await startWorker(cleanup, ["--model", model, "--device", "cpu", "--context-size", "256", "--parallel", "1"]);
  await ready(w);
});
test.after.always(() => cleanup.run());

const greedy = (prompt: string, extra: object = {}) => ({ operation: "infer", prompt, temperature: 0, max_tokens: 12, ...extra });

test.serial("greedy generation is the same text twice, in order, with usage", async (t) => {
  const a = await run(w, greedy("the bee"));
  const b = await run(w, greedy("the bee"));
  t.is(end(a).status, "completed");
  t.is(end(a).finish_reason, "length");
  t.deepEqual(end(a).usage, { prompt_tokens: 3, completion_tokens: 12 });
  t.truthy(end(a).timing);
  t.is(tokens(a).length, 12);
  t.true(text(a).trim().length > 0);
  t.is(text(a), text(b));
  const indexes = a.flatMap((e) => (e.event === "token" ? [e.data.index] : []));
  t.deepEqual(indexes, [...indexes.keys()]);
});

test.serial("a stop string ends generation and is not emitted, even across tokens", async (t) => {
  const words = tokens(await run(w, greedy("the bee")));
  t.true(words.length >= 4);
  const cut = words[3] as string;
  const stopped = await run(w, greedy("the bee", { stop: ["zzz", cut] }));
  t.is(end(stopped).finish_reason, "stop");
  t.is(text(stopped), words.slice(0, 3).join(""));
  // a stop string made of the end of one word and the start of the next
  const joined = words.join("");
  const second = words[1] as string;
  const third = words[2] as string;
  const across = second.slice(-2) + third.slice(0, 2);
  const at = joined.indexOf(across);
  const split = await run(w, greedy("the bee", { stop: [across] }));
  t.is(end(split).finish_reason, "stop");
  t.is(text(split), joined.slice(0, at));
});

test.serial("end of sequence stops with finish_reason stop; ignore_eos runs to max_tokens", async (t) => {
  const bye = await run(w, greedy("the bee goodbye"));
  t.is(end(bye).finish_reason, "stop");
  t.is(text(bye), "");
  const farewell = await run(w, greedy("honey farewell"));
  t.is(end(farewell).finish_reason, "stop");
  t.is(text(farewell), " dear friend");
  const ignored = await run(w, greedy("the bee goodbye", { ignore_eos: true, max_tokens: 7 }));
  t.is(end(ignored).finish_reason, "length");
  t.is(end(ignored).usage?.completion_tokens, 7);
});

test.serial("one token event per counted token, sampled: with ignore_eos exactly max_tokens, without it EOS is not counted", async (t) => {
  // Sampling reaches rbee-tiny's byte tokens (a character split over tokens) and its other end-of-turn tokens,
  // which greedy text never does.
  for (let seed = 1; seed <= 12; seed++) {
    const events = await run(w, { operation: "infer", prompt: "the bee", temperature: 1.5, seed, max_tokens: 96, ignore_eos: true });
    t.is(end(events).finish_reason, "length", `seed ${seed}`);
    t.is(end(events).usage?.completion_tokens, 96, `seed ${seed}`);
    t.is(tokens(events).length, 96, `seed ${seed}: one event per token`);
  }
  const bye = await run(w, greedy("the bee goodbye"));
  t.is(end(bye).finish_reason, "stop");
  t.is(end(bye).usage?.completion_tokens, 0, "the end-of-sequence token alone is no completion");
  const farewell = await run(w, greedy("honey farewell"));
  t.is(end(farewell).usage?.completion_tokens, tokens(farewell).length);
});

test.serial("messages go through the model's chat template", async (t) => {
  const events = await run(w, { operation: "infer", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hello bee" }], temperature: 0, max_tokens: 8 });
  t.is(end(events).status, "completed");
  // ChatML adds its markers around both messages
  t.true((end(events).usage?.prompt_tokens ?? 0) > 12);
  t.true(text(events).length > 0);
});

test.serial("a prompt longer than the context ends CONTEXT_OVERFLOW and the worker goes on", async (t) => {
  const long = await run(w, greedy(Array.from({ length: 300 }, () => "the").join(" ")));
  t.is(end(long).status, "failed");
  t.is(end(long).error?.code, "CONTEXT_OVERFLOW");
  t.regex(end(long).error?.message ?? "", /256/);
  const next = await run(w, greedy("the bee"));
  t.is(end(next).status, "completed");
  t.is((await fetch(`${w.url}/health`)).status, 200);
});

test.serial("a prompt that cannot fit by its length alone is CONTEXT_OVERFLOW without being tokenized", async (t) => {
  const huge = "honey ".repeat(160_000); // 960,000 bytes: under the 1 MiB body limit
  const events = await run(w, greedy(huge));
  t.is(end(events).error?.code, "CONTEXT_OVERFLOW");
  t.regex(end(events).error?.message ?? "", /at least \d+ tokens \(960000 bytes\).*256/);
  const chat = await run(w, { operation: "infer", messages: [{ role: "user", content: huge }], max_tokens: 2 });
  t.is(end(chat).error?.code, "CONTEXT_OVERFLOW");
  t.is(end(await run(w, greedy("the bee"))).status, "completed");
});

test.serial("a long prompt is evaluated in chunks, with progress in tokens", async (t) => {
  const events = await run(w, greedy(Array.from({ length: 200 }, () => "honey").join(" ")));
  t.is(end(events).status, "completed");
  const progress = events.flatMap((e) => (e.event === "progress" ? [e.data] : []));
  t.true(progress.length > 0);
  t.true(progress.every((p) => p.unit === "tokens" && p.total === end(events).usage?.prompt_tokens));
  t.deepEqual(progress.map((p) => p.done), [...progress.map((p) => p.done)].sort((a, b) => a - b));
});

test.serial("max_tokens beyond the context shifts it and keeps going", async (t) => {
  const events = await run(w, greedy("the bee", { ignore_eos: true, max_tokens: 600 }));
  t.is(end(events).status, "completed");
  t.is(end(events).finish_reason, "length");
  t.is(end(events).usage?.completion_tokens, 600);
  t.true(events.some((e) => e.event === "narration" && e.data.action === "context_shift" && /kept the prompt/.test(e.data.human)));
});

test.serial("bad values are refused with 400 before any job exists", async (t) => {
  const cases: [object, string, RegExp][] = [
    [{ operation: "infer", prompt: "x", temperature: 3 }, "INVALID_REQUEST", /temperature/],
    [{ operation: "infer", prompt: "x", top_p: 0 }, "INVALID_REQUEST", /top_p/],
    [{ operation: "infer", prompt: "x", max_tokens: "5" }, "INVALID_REQUEST", /max_tokens/],
    [{ operation: "infer", prompt: "x", stop: [""] }, "INVALID_REQUEST", /stop/],
    [{ operation: "infer", prompt: "x", messages: [{ role: "user", content: "y" }] }, "INVALID_REQUEST", /messages/],
    [{ operation: "embed", input: [] }, "INVALID_REQUEST", /input/],
    [{ operation: "load" }, "UNKNOWN_OPERATION", /infer, embed/],
  ];
  const before = (await w.client.list()).length;
  for (const [body, code, message] of cases) {
    const res = await post(w, JSON.stringify(body));
    t.is(res.status, 400, JSON.stringify(body));
    t.is(res.body.error?.code, code);
    t.regex(res.body.error?.message ?? "", message);
  }
  t.is((await post(w, "{not json")).body.error?.code, "INVALID_JSON");
  t.is((await w.client.list()).length, before);
});

test.serial("embed returns one vector per input, in order, the same for the same text", async (t) => {
  const events = await run(w, { operation: "embed", input: ["the bee", "honey comb", "the bee"] });
  t.is(end(events).status, "completed");
  const data = events.find((e): e is Extract<JobEvent, { event: "data" }> => e.event === "data");
  t.is(data?.data.action, "embed");
  const payload = data?.data.payload as { embeddings: number[][]; usage: { prompt_tokens: number } };
  t.is(payload.embeddings.length, 3);
  t.true((payload.embeddings[0]?.length ?? 0) > 0);
  t.deepEqual(payload.embeddings[0], payload.embeddings[2]);
  t.notDeepEqual(payload.embeddings[0], payload.embeddings[1]);
  t.true(payload.usage.prompt_tokens >= 6);
  const single = await run(w, { operation: "embed", input: "honey comb" });
  const one = single.find((e) => e.event === "data")?.data as { payload: { embeddings: number[][] } };
  t.deepEqual(one.payload.embeddings, [payload.embeddings[1]]);
});

test.serial("cancel mid-stream ends cancelled at once and frees the slot; a queued job tells its place", async (t) => {
  const long = await w.client.create(greedy("the bee", { ignore_eos: true, max_tokens: 1_000_000 }));
  const seen: JobEvent[] = [];
  const reading = (async () => {
    for await (const e of w.client.stream(long.job_id)) seen.push(e);
  })();
  await waitFor("the first tokens", () => seen.some((e) => e.event === "token"), 30_000);
  const queued = await w.client.create(greedy("the bee"));
  const narration = await waitFor("the queue narration", async () => {
    const events: JobEvent[] = [];
    for await (const e of w.client.stream(queued.job_id)) {
      events.push(e);
      if (e.event === "narration" && e.data.action === "queued") break;
    }
    return events;
  }, 30_000);
  const told = narration.find((e) => e.event === "narration" && e.data.action === "queued");
  t.regex(told?.event === "narration" ? told.data.human : "", /place 1 in line/);
  const listed = (await w.client.list()).find((j) => j.job_id === queued.job_id);
  t.is(listed?.status, "queued");
  t.like(await info(w), { state: "busy", busy_slots: 1, queued: 1 });

  const cancelledAt = Date.now();
  await w.client.cancel(long.job_id);
  await reading;
  const latency = Date.now() - cancelledAt;
  t.log(`cancel took ${latency} ms`);
  t.is(end(seen).status, "cancelled");
  t.is(end(seen).error?.code, "CANCELLED");
  t.true(latency < 2000);
  // the queued job gets the freed slot and completes
  const rest = await collect(w, queued.job_id);
  t.is(end(rest).status, "completed");
  t.is(tokens(rest).length, 12);
  t.like(await info(w), { state: "ready", busy_slots: 0, queued: 0 });
});

test.serial("metrics count tokens, first-token time and busy slots", async (t) => {
  const body = await (await fetch(`${w.url}/metrics`)).text();
  const generated = /^rbee_worker_tokens_generated_total\{[^}]*\} (\d+)/m.exec(body);
  t.true(Number(generated?.[1]) > 0);
  t.regex(body, /^rbee_worker_time_to_first_token_seconds_count\{[^}]*\} [1-9]/m);
  t.regex(body, /^rbee_worker_busy_slots\{[^}]*\} 0/m);
  t.regex(body, /^rbee_worker_model_load_seconds\{[^}]*\} [0-9.]+/m);
  t.regex(body, /^rbee_jobs_total\{[^}]*operation="infer",status="completed"[^}]*\} [1-9]/m);
});
