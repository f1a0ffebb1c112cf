/**
 * Embeddings against a real queen -> hive -> worker: the `embed` job, POST /v1/embeddings with the
 * official openai client, and `rbee embed`. Vectors have the model's dimension, repeat exactly across
 * calls and batches, and come back in input order.
 */
import test from "ava";
import OpenAI from "openai";
import { RBEE_TINY } from "../../shared/rbee-tiny.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { cascadeForFile, type Finished } from "../cli/helpers/cascade.js";
import { runKeeper } from "../cli/helpers/keeper.js";

const serial = daemonsBuilt ? test.serial : test.skip;
const DIM = RBEE_TINY.embeddingLength;
const TEXTS = ["the hive hums at dawn", "bees", "a queen rules the colony", "bees"];

const c = cascadeForFile();

const vectors = (r: Finished): number[][] => {
  const d = r.events.find((e) => e.event === "data" && e.data.action === "embed");
  if (d?.event !== "data") throw new Error(`no embed data: ${JSON.stringify(r.end)}`);
  return (d.data.payload as { embeddings: number[][] }).embeddings;
};

/** The largest elementwise difference, for a message when vectors differ. */
const maxDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] ?? NaN))), 0);

let byText = new Map<string, number[]>();

serial("embed through the queen: one vector per input, in order, of the model's dimension, the same every time", async (t) => {
  const r = await c.run({ operation: "embed", input: TEXTS });
  t.is(r.end.status, "completed", JSON.stringify(r.end));
  const v = vectors(r);
  t.is(v.length, TEXTS.length);
  for (const x of v) {
    t.is(x.length, DIM);
    t.true(x.every((n) => typeof n === "number" && Number.isFinite(n)));
  }
  t.deepEqual(v[1], v[3], "the same text twice in one batch");
  t.notDeepEqual(v[0], v[1]);
  // A worker spawned on the way adds a worker_spawn data event; the result is the embed one.
  const d = r.events.find((e) => e.event === "data" && e.data.action === "embed");
  t.true(d?.event === "data" && (d.data.payload as { usage: { prompt_tokens: number } }).usage.prompt_tokens > 0);
  t.is(d?.data.path.length, 3, "queen -> hive -> worker");
  byText = new Map(TEXTS.map((s, i) => [s, v[i] as number[]]));

  // Reversed, alone, and again: each text keeps its vector, whatever its neighbours and position.
  const reversed = vectors(await c.run({ operation: "embed", input: [...TEXTS].reverse() }));
  reversed.reverse().forEach((x, i) => t.deepEqual(x, v[i], `reversed batch, input ${i} (max diff ${maxDiff(x, v[i] as number[])})`));
  const alone = vectors(await c.run({ operation: "embed", input: TEXTS[2] }));
  t.is(alone.length, 1, "a string input is one vector");
  t.deepEqual(alone[0], v[2], `alone (max diff ${maxDiff(alone[0] as number[], v[2] as number[])})`);
});

serial("POST /v1/embeddings with the official openai client: base64 by default and floats, in input order", async (t) => {
  const openai = new OpenAI({ baseURL: `${c.url}/v1`, apiKey: "unused", maxRetries: 0 });
  const input = [TEXTS[2] as string, TEXTS[0] as string, TEXTS[1] as string];
  const res = await openai.embeddings.create({ model: "rbee-tiny", input });
  t.is(res.object, "list");
  t.is(res.model, "rbee-tiny");
  t.deepEqual(res.data.map((d) => d.index), [0, 1, 2]);
  t.true(res.usage.prompt_tokens > 0);
  res.data.forEach((d, i) => {
    t.is(d.embedding.length, DIM);
    const want = byText.get(input[i] as string) as number[];
    // base64 carries float32: the job's numbers rounded to single precision.
    t.true(maxDiff(d.embedding, want) < 1e-6, `input ${i}: max diff ${maxDiff(d.embedding, want)}`);
  });
  const floats = await openai.embeddings.create({ model: "rbee-tiny", input, encoding_format: "float" });
  floats.data.forEach((d, i) => t.deepEqual(d.embedding, byText.get(input[i] as string), `float input ${i}`));
  const one = await openai.embeddings.create({ model: "rbee-tiny", input: "bees", encoding_format: "float" });
  t.deepEqual(one.data[0]?.embedding, byText.get("bees"));
  const err = await t.throwsAsync(openai.embeddings.create({ model: "no-such-model", input: "x" }));
  t.true(err instanceof OpenAI.NotFoundError, String(err));
});

serial("rbee embed TEXT...: one JSON vector per line in order; --json prints the events", async (t) => {
  const plain = await runKeeper(["embed", TEXTS[1] as string, TEXTS[0] as string], { env: c.keeperEnv, timeoutMs: 60_000 });
  t.is(plain.code, 0, plain.stderr);
  const lines = plain.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as number[]);
  t.deepEqual(lines, [byText.get(TEXTS[1] as string), byText.get(TEXTS[0] as string)]);
  const json = await runKeeper(["embed", "bees", "--json"], { env: c.keeperEnv, timeoutMs: 60_000 });
  t.is(json.code, 0, json.stderr);
  const events = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { event: string; payload?: { embeddings: number[][] }; status?: string });
  t.deepEqual(events.find((e) => e.event === "data")?.payload?.embeddings, [byText.get("bees")]);
  t.like(events.at(-1), { event: "end", status: "completed" });
  t.is((await runKeeper(["embed"], { env: c.keeperEnv })).code, 2, "TEXT is required");
});
