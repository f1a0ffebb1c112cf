/** The official openai client (v6) against the real queen -> hive -> worker, unchanged but for baseURL. */
import test from "ava";
import OpenAI from "openai";
import type { JobSummary } from "../../shared/protocol.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { waitFor } from "../_helpers/wait.js";
import { cascadeForFile } from "../cli/helpers/cascade.js";

const serial = daemonsBuilt ? test.serial : test.skip;
let openai: OpenAI;
const c = cascadeForFile({}, (up) => {
  openai = new OpenAI({ baseURL: `${up.url}/v1`, apiKey: "sk-unused", maxRetries: 0, timeout: 120_000 });
});

serial("chat, whole and streamed, and models.list listing rbee-tiny", async (t) => {
  const chat = await openai.chat.completions.create({ model: "rbee-tiny", messages: [{ role: "user", content: "Say hello" }], max_tokens: 8, seed: 7 });
  t.is(chat.object, "chat.completion");
  t.is(chat.model, "rbee-tiny");
  t.is(chat.choices[0]?.message.role, "assistant");
  t.true((chat.choices[0]?.message.content ?? "").length > 0);
  t.true(["stop", "length"].includes(chat.choices[0]?.finish_reason ?? ""));
  t.true((chat.usage?.completion_tokens ?? 0) >= 1 && (chat.usage?.completion_tokens ?? 99) <= 8);
  t.true((chat.usage?.prompt_tokens ?? 0) > 0);

  const models = await openai.models.list();
  t.true(models.data.some((m) => m.id === "rbee-tiny" && m.object === "model"), JSON.stringify(models.data));

  const stream = await openai.chat.completions.create({ model: "rbee-tiny", messages: [{ role: "user", content: "Count" }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    t.is(chunk.object, "chat.completion.chunk");
    text += chunk.choices[0]?.delta.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  t.true(text.length > 0);
  t.true(finish === "stop" || finish === "length");
  t.true((usage?.completion_tokens ?? 0) >= 1);
});

serial("completions; an unknown model is NotFoundError (404)", async (t) => {
  const done = await openai.completions.create({ model: "rbee-tiny", prompt: "Once upon a time", max_tokens: 5 });
  t.is(done.object, "text_completion");
  t.true((done.choices[0]?.text ?? "").length > 0);
  t.true((done.usage?.completion_tokens ?? 0) >= 1);
  const err = await t.throwsAsync(openai.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }));
  t.true(err instanceof OpenAI.NotFoundError, String(err));
  t.is((err as InstanceType<typeof OpenAI.APIError>).status, 404);
});

serial("a client that goes away mid-stream cancels the job, down to the hive", async (t) => {
  // ignore_eos is an rbee extension: the stream would otherwise end on its own.
  const params = { model: "rbee-tiny", messages: [{ role: "user" as const, content: "Tell a long story" }], max_tokens: 100_000, stream: true as const, ignore_eos: true };
  const { data: stream, response } = await openai.chat.completions.create(params).withResponse();
  const jobId = response.headers.get("x-rbee-job-id") ?? "";
  t.regex(jobId, /^job-[A-Za-z0-9_-]{6,64}$/);
  let chunks = 0;
  for await (const chunk of stream) if (chunk.choices[0]?.delta.content && ++chunks >= 3) break; // break aborts the request
  const left = Date.now();
  let job: JobSummary | undefined;
  await waitFor(() => `${jobId} cancelled (now ${job?.status})`, async () => (job = (await c.client.list()).find((j) => j.job_id === jobId))?.status === "cancelled", 15_000);
  t.log(`queen job cancelled ${Date.now() - left} ms after the client left`);
  t.is(job?.operation, "infer");
  const hive = await c.localhost();
  const hiveJobs = (await (await fetch(`${hive?.url}/v1/jobs`)).json()) as { jobs: JobSummary[] };
  await waitFor(`the hive's job under ${jobId} cancelled (${JSON.stringify(hiveJobs.jobs.slice(0, 3))})`, async () => {
    const own = ((await (await fetch(`${hive?.url}/v1/jobs`)).json()) as { jobs: JobSummary[] }).jobs.filter((j) => j.parent_job_id === jobId);
    return own.length > 0 && own.every((j) => j.status === "cancelled");
  }, 15_000);
  t.pass();
});
