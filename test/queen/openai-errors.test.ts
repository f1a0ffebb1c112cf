import test from "ava";
import { APIError, BadRequestError, NotFoundError } from "openai";
import { waitFor } from "../_helpers/wait.js";
import { postRaw, startFixture } from "./openai-fixture.js";

const user = (content: string) => [{ role: "user" as const, content }];

interface ErrorShape {
  error: { message: string; type: string; param: string | null; code: string };
}

test("an unknown model is a 404 MODEL_NOT_FOUND before any job exists", async (t) => {
  const { client, server } = await startFixture(t);
  const err = await t.throwsAsync(client.chat.completions.create({ model: "no-such-model", messages: user("hi") }), { instanceOf: NotFoundError });
  t.is(err?.status, 404);
  t.is(err?.code, "MODEL_NOT_FOUND");
  t.is(err?.param, "model");
  t.regex(err?.message ?? "", /no-such-model.*rbee-tiny/);
  await t.throwsAsync(client.embeddings.create({ model: "nope", input: "a" }), { instanceOf: NotFoundError });
  await t.throwsAsync(client.models.retrieve("nope"), { instanceOf: NotFoundError });
  t.deepEqual(server.registry.list(), []);
});

test("what rbee cannot do is a 400 naming the field", async (t) => {
  const { client, server } = await startFixture(t);
  const cases: Array<[string, Record<string, unknown>]> = [
    ["n", { n: 2 }],
    ["tools", { tools: [{ type: "function", function: { name: "f" } }] }],
    ["logprobs", { logprobs: true }],
    ["presence_penalty", { presence_penalty: 0.5 }],
    ["response_format", { response_format: { type: "json_object" } }],
    ["temperature", { temperature: 3 }],
    ["max_tokens", { max_tokens: 0 }],
    ["messages[0].content[0].type", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }],
    ["messages[0].role", { messages: [{ role: "tool", content: "x", tool_call_id: "1" }] }],
    ["model", { model: undefined }],
  ];
  for (const [param, extra] of cases) {
    const body = { model: "rbee-tiny", messages: user("hi"), ...extra } as never;
    const err = await t.throwsAsync(client.chat.completions.create(body), { instanceOf: BadRequestError }, param);
    t.is(err?.param, param);
    t.is(err?.code, "INVALID_REQUEST");
    t.true((err?.message ?? "").includes(param), err?.message);
  }
  const prompt = await t.throwsAsync(client.completions.create({ model: "rbee-tiny", prompt: ["a", "b"] }), { instanceOf: BadRequestError });
  t.is(prompt?.param, "prompt");
  const tokens = await t.throwsAsync(client.embeddings.create({ model: "rbee-tiny", input: [[1, 2, 3]] }), { instanceOf: BadRequestError });
  t.is(tokens?.param, "input");
  t.deepEqual(server.registry.list(), [], "no job was created for a refused request");
});

test("bad JSON answers in OpenAI's error shape", async (t) => {
  const { url } = await startFixture(t);
  const res = await postRaw(url, "/v1/chat/completions", "{not json");
  t.is(res.status, 400);
  const body = JSON.parse(res.text) as ErrorShape;
  t.deepEqual(body, { error: { message: body.error.message, type: "invalid_request_error", param: null, code: "INVALID_JSON" } });
});

test("job failures map to OpenAI statuses: capacity 503, context overflow 400", async (t) => {
  const { client, url } = await startFixture(t);
  const full = await t.throwsAsync(client.chat.completions.create({ model: "rbee-tiny", messages: user("fail-early INSUFFICIENT_MEMORY") }), { instanceOf: APIError });
  t.is(full?.status, 503);
  t.is(full?.code, "INSUFFICIENT_MEMORY");
  t.is(full?.type, "server_error");
  const overflow = await t.throwsAsync(client.completions.create({ model: "rbee-tiny", prompt: "fail-early CONTEXT_OVERFLOW" }), { instanceOf: BadRequestError });
  t.is(overflow?.code, "CONTEXT_OVERFLOW");
  // Before the first token a stream has not begun: the failure keeps its HTTP status.
  const early = await postRaw(url, "/v1/chat/completions", { model: "rbee-tiny", messages: user("fail-early QUEUE_FULL"), stream: true });
  t.is(early.status, 503);
  t.is((JSON.parse(early.text) as ErrorShape).error.code, "QUEUE_FULL");
  t.regex(early.headers.get("x-rbee-job-id") ?? "", /^job-/);
});

test("a failure mid-stream is one error line and no [DONE]", async (t) => {
  const { url, client } = await startFixture(t);
  const res = await postRaw(url, "/v1/chat/completions", { model: "rbee-tiny", messages: user("fail-mid WORKER_CRASHED"), stream: true });
  t.is(res.status, 200);
  const lines = res.text.split("\n\n").filter((l) => l.startsWith("data: "));
  t.false(lines.includes("data: [DONE]"));
  const last = JSON.parse(lines.at(-1)?.slice(6) ?? "{}") as ErrorShape;
  t.is(last.error.code, "WORKER_CRASHED");
  t.is(last.error.type, "server_error");
  t.true(lines.slice(0, -1).every((l) => !l.includes('"error"')), "exactly one error line");

  const stream = await client.chat.completions.create({ model: "rbee-tiny", messages: user("fail-mid TIMEOUT"), stream: true });
  let text = "";
  const err = await t.throwsAsync(async () => {
    for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
  }, { instanceOf: APIError });
  t.is(err?.code, "TIMEOUT");
  t.is(text, "Hello, world");
});

test("a client that disconnects mid-stream cancels the job", async (t) => {
  const { client, server, aborted } = await startFixture(t);
  const ac = new AbortController();
  const { data: stream, response } = await client.chat.completions
    .create({ model: "rbee-tiny", messages: user("slow"), stream: true }, { signal: ac.signal })
    .withResponse();
  const jobId = response.headers.get("x-rbee-job-id") ?? "";
  let seen = 0;
  for await (const c of stream) {
    if (c.choices[0]?.delta.content) seen++;
    if (seen === 3) ac.abort();
  }
  t.is(seen, 3);
  await waitFor(() => `${jobId} cancelled (job status ${server.registry.get(jobId)?.status})`, () => server.registry.get(jobId)?.status === "cancelled", 10_000);
  t.true(aborted.has(jobId), "the handler saw its signal abort");
});

test("a client that disconnects while waiting for a whole answer cancels the job", async (t) => {
  const { client, server, aborted } = await startFixture(t);
  const ac = new AbortController();
  const pending = client.chat.completions.create({ model: "rbee-tiny", messages: user("slow") }, { signal: ac.signal });
  await waitFor("a running job", () => server.registry.list().some((j) => j.status === "running"), 10_000);
  const jobId = server.registry.list()[0]?.job_id ?? "";
  ac.abort();
  await t.throwsAsync(pending);
  await waitFor(`${jobId} cancelled`, () => server.registry.get(jobId)?.status === "cancelled", 10_000);
  t.true(aborted.has(jobId));
});
