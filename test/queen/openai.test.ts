import test from "ava";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { DEFAULT_MAX_TOKENS } from "../../daemons/queen/openai-request.js";
import { COMMIT_WAIT_MS } from "../../daemons/queen/openai-stream.js";
import type { InferOperation } from "../../shared/protocol.js";
import { MODELS, TOKENS, VECTORS, postRaw, startFixture } from "./openai-fixture.js";

const JOINED = TOKENS.join("");

test("GET /v1/models lists the models of deps.models() in OpenAI's shape", async (t) => {
  const { client } = await startFixture(t);
  const page = await client.models.list();
  t.deepEqual(page.data.map((m) => m.id), MODELS.map((m) => m.id));
  for (const m of page.data) {
    t.is(m.object, "model");
    t.is(m.owned_by, "rbee");
    t.true(Number.isInteger(m.created) && m.created > 1_600_000_000);
  }
  t.is((await client.models.retrieve("rbee-tiny")).id, "rbee-tiny");
});

test("chat completion: the content is the joined tokens, with finish_reason, usage and OpenAI defaults", async (t) => {
  const { url, client, ops, server } = await startFixture(t);
  const { data, response } = await client.chat.completions
    .create({
      model: "rbee-tiny",
      messages: [
        { role: "developer", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Say" }, { type: "text", text: "hello" }] },
      ],
      // Neutral values clients send are accepted.
      n: 1, presence_penalty: 0, frequency_penalty: 0, logprobs: false, user: "u1", response_format: { type: "text" },
    })
    .withResponse();
  t.is(data.object, "chat.completion");
  t.regex(data.id, /^chatcmpl-job-/);
  t.is(data.model, "rbee-tiny");
  t.true(Number.isInteger(data.created));
  t.is(data.choices.length, 1);
  t.deepEqual(data.choices[0]?.message.role, "assistant");
  t.is(data.choices[0]?.message.content, JOINED);
  t.is(data.choices[0]?.finish_reason, "stop");
  t.deepEqual(data.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });

  const jobId = response.headers.get("x-rbee-job-id") ?? "";
  t.regex(jobId, /^job-[A-Za-z0-9_-]{6,64}$/);
  const op = ops.get(jobId) as InferOperation;
  t.deepEqual(op.messages, [{ role: "system", content: "Be brief." }, { role: "user", content: "Say\nhello" }]);
  t.is(op.temperature, 1);
  t.is(op.max_tokens, DEFAULT_MAX_TOKENS);
  t.is(server.registry.get(jobId)?.status, "completed");
  const jobs = (await (await fetch(`${url}/v1/jobs`)).json()) as { jobs: Array<{ job_id: string; operation: string }> };
  t.deepEqual(jobs.jobs.find((j) => j.job_id === jobId)?.operation, "infer");
});

test("chat maps max_completion_tokens, sampling fields and stop; length is reported", async (t) => {
  const { client, ops } = await startFixture(t);
  const { data, response } = await client.chat.completions
    .create({ model: "llama-3.2-1b", messages: [{ role: "user", content: "hi" }], max_completion_tokens: 2, temperature: 0.2, top_p: 0.9, seed: 7, stop: "\n" })
    .withResponse();
  t.is(data.choices[0]?.message.content, TOKENS.slice(0, 2).join(""));
  t.is(data.choices[0]?.finish_reason, "length");
  const op = ops.get(response.headers.get("x-rbee-job-id") ?? "") as InferOperation;
  t.like(op, { model: "llama-3.2-1b", max_tokens: 2, temperature: 0.2, top_p: 0.9, seed: 7, stop: ["\n"] });
});

test("chat stream: role chunk, content chunks, finish chunk, usage chunk, [DONE]", async (t) => {
  const { client } = await startFixture(t);
  const stream = await client.chat.completions.create({
    model: "rbee-tiny",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks: ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  t.true(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0]?.id));
  t.is(chunks[0]?.choices[0]?.delta.role, "assistant");
  t.is(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), JOINED);
  const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
  t.is(finish.length, 1);
  t.is(finish[0]?.choices[0]?.finish_reason, "stop");
  const last = chunks.at(-1);
  t.deepEqual(last?.choices, []);
  t.deepEqual(last?.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
});

test("a raw chat stream ends with data: [DONE] and carries X-Rbee-Job-ID", async (t) => {
  const { url } = await startFixture(t);
  const res = await postRaw(url, "/v1/chat/completions", { model: "rbee-tiny", messages: [{ role: "user", content: "hi" }], stream: true });
  t.is(res.status, 200);
  t.regex(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  t.regex(res.headers.get("x-rbee-job-id") ?? "", /^job-/);
  const lines = res.text.split("\n\n").filter((l) => l.startsWith("data: "));
  t.is(lines.at(-1), "data: [DONE]");
  t.false(lines.slice(0, -1).some((l) => l.includes("usage")), "no usage chunk unless include_usage");
});

test("a stream whose first token is slow to come commits to 200 and goes on", async (t) => {
  const { url, release } = await startFixture(t);
  const started = Date.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "rbee-tiny", messages: [{ role: "user", content: "hold" }], stream: true }),
  });
  // The headers came while the job still held its tokens back.
  t.is(res.status, 200);
  t.true(Date.now() - started >= COMMIT_WAIT_MS - 100);
  release();
  const text = await res.text();
  const lines = text.split("\n\n").filter((l) => l.startsWith("data: "));
  t.true(lines.some((l) => l.includes('"content":"Hello"')));
  t.is(lines.at(-1), "data: [DONE]");
});

test("completions, whole and streamed", async (t) => {
  const { client, ops } = await startFixture(t);
  const { data, response } = await client.completions.create({ model: "rbee-tiny", prompt: ["Once upon"], max_tokens: 5 }).withResponse();
  t.is(data.object, "text_completion");
  t.regex(data.id, /^cmpl-job-/);
  t.is(data.choices[0]?.text, JOINED);
  t.is(data.choices[0]?.finish_reason, "stop");
  t.is(data.usage?.total_tokens, 8);
  t.like(ops.get(response.headers.get("x-rbee-job-id") ?? ""), { prompt: "Once upon", max_tokens: 5, temperature: 1 });

  const stream = await client.completions.create({ model: "rbee-tiny", prompt: "Once", stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage;
  for await (const c of stream) {
    text += c.choices[0]?.text ?? "";
    usage = c.usage ?? usage;
  }
  t.is(text, JOINED);
  t.is(usage?.completion_tokens, 3);
});

test("embeddings as floats and as the official client's default base64", async (t) => {
  const { client } = await startFixture(t);
  const floats = await client.embeddings.create({ model: "rbee-tiny", input: ["a", "b"], encoding_format: "float" });
  t.is(floats.object, "list");
  t.deepEqual(floats.data.map((d) => [d.object, d.index]), [["embedding", 0], ["embedding", 1]]);
  t.deepEqual(floats.data[1]?.embedding, VECTORS["b"]);
  t.deepEqual(floats.usage, { prompt_tokens: 4, total_tokens: 4 });
  t.is(floats.model, "rbee-tiny");

  const decoded = await client.embeddings.create({ model: "rbee-tiny", input: "b" });
  t.deepEqual(decoded.data[0]?.embedding, (VECTORS["b"] ?? []).map(Math.fround));
  const raw = await postRaw(client.baseURL.replace(/\/v1$/, ""), "/v1/embeddings", { model: "rbee-tiny", input: "a", encoding_format: "base64" });
  const b64 = (JSON.parse(raw.text) as { data: Array<{ embedding: string }> }).data[0]?.embedding ?? "";
  const buf = Buffer.from(b64, "base64");
  t.deepEqual([0, 4, 8].map((o) => buf.readFloatLE(o)), VECTORS["a"]);
});

test("X-Correlation-ID is carried into the job and returned", async (t) => {
  const { client, server } = await startFixture(t);
  const { response } = await client.chat.completions
    .create({ model: "rbee-tiny", messages: [{ role: "user", content: "hi" }] }, { headers: { "X-Correlation-ID": "corr-openai-test" } })
    .withResponse();
  t.is(response.headers.get("x-correlation-id"), "corr-openai-test");
  t.is(server.registry.get(response.headers.get("x-rbee-job-id") ?? "")?.correlationId, "corr-openai-test");
});
