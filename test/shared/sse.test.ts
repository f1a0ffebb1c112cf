import test from "ava";
import type { JobEvent } from "../../shared/protocol.js";
import { PING_FRAME, createJobEventParser, encodeEvent, parseEventStream } from "../../shared/sse.js";

const base = { job_id: "job-abcdef123456", correlation_id: "corr-xyz", path: ["job-abcdef123456"] };
const events: JobEvent[] = [
  {
    id: 1, event: "narration",
    data: { ...base, actor: "llm-worker-rbee", node: null, action: "load_model", target: "rbee-tiny", human: "Loading rbee-tiny.", level: "info", ts: "2025-01-01T00:00:00.000Z" },
  },
  { id: 2, event: "progress", data: { ...base, action: "load_model", target: "rbee-tiny", done: 3, total: null, unit: "layers" } },
  { id: 3, event: "token", data: { ...base, text: "h\u00e9llo \u{1F41D} \u4e16\u754c", index: 0 } },
  { id: 4, event: "token", data: { ...base, text: "line\nbreak\r\n: not a comment\ndata: x", index: 1 } },
  { id: 5, event: "data", data: { ...base, action: "status", payload: { list: [1, "\u00fc", null], nested: { ok: true } } } },
  {
    id: 6, event: "end",
    data: { ...base, status: "completed", finish_reason: "stop", usage: { prompt_tokens: 3, completion_tokens: 2 }, timing: { ttft_ms: 1.5, total_ms: 9, tokens_per_s: 200 } },
  },
];

/** The recorded stream: the events with pings between them, as a server writes it. */
const recorded = PING_FRAME + events.map((e, i) => encodeEvent(e) + (i % 2 === 0 ? PING_FRAME : "")).join("");
const crlf = recorded.replace(/\n/g, "\r\n");

async function parseChunks(chunks: Uint8Array[]): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  async function* source(): AsyncGenerator<Uint8Array> {
    yield* chunks;
  }
  for await (const e of parseEventStream(source())) out.push(e);
  return out;
}

test("encodeEvent writes id, event and exactly one data line", (t) => {
  for (const e of events) {
    const frame = encodeEvent(e);
    t.true(frame.endsWith("\n\n"));
    const lines = frame.slice(0, -2).split("\n");
    t.is(lines.length, 3, frame);
    t.is(lines[0], `id: ${e.id}`);
    t.is(lines[1], `event: ${e.event}`);
    t.true(lines[2]?.startsWith("data: "));
    t.false(frame.includes("\r"));
    t.deepEqual(JSON.parse(lines[2]?.slice(6) ?? ""), e.data);
  }
  t.is(PING_FRAME, ": ping\n\n");
});

for (const [name, text] of [["LF", recorded], ["CRLF", crlf]] as const) {
  test(`a ${name} stream split at every byte boundary yields the same events`, async (t) => {
    const bytes = new TextEncoder().encode(text);
    t.deepEqual(await parseChunks([bytes]), events);
    for (let i = 1; i < bytes.length; i++) {
      const got = await parseChunks([bytes.subarray(0, i), bytes.subarray(i)]);
      if (JSON.stringify(got) !== JSON.stringify(events)) return t.fail(`split at byte ${i} gave ${JSON.stringify(got).slice(0, 200)}`);
    }
    const single = Array.from(bytes, (b) => Uint8Array.of(b));
    t.deepEqual(await parseChunks(single), events);
    t.pass();
  });
}

test("the string parser reports pings as comments and survives every split", (t) => {
  for (const text of [recorded, crlf]) {
    for (let i = 0; i <= text.length; i++) {
      const got: JobEvent[] = [];
      const comments: string[] = [];
      const parser = createJobEventParser((e) => got.push(e), { onComment: (c) => comments.push(c) });
      parser.feed(text.slice(0, i));
      parser.feed(text.slice(i));
      if (JSON.stringify(got) !== JSON.stringify(events)) return t.fail(`split at ${i} lost events`);
      if (comments.length !== 4 || comments.some((c) => c !== "ping")) return t.fail(`split at ${i}: comments ${JSON.stringify(comments)}`);
    }
  }
  t.pass();
});

test("frames with an unknown type or non-JSON data are reported and skipped", (t) => {
  const got: JobEvent[] = [];
  const invalid: string[] = [];
  const parser = createJobEventParser((e) => got.push(e), { onInvalid: (_m, reason) => invalid.push(reason) });
  parser.feed(`id: 1\nevent: surprise\ndata: {}\n\nid: 2\nevent: token\ndata: not json\n\n${encodeEvent(events[2] as JobEvent)}`);
  t.deepEqual(got, [events[2]]);
  t.deepEqual(invalid, ['unknown event type "surprise"', "data is not JSON"]);
});
