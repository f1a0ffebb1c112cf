/** Day-to-day views: idle time and keep-alive left per worker in `rbee status`, and evictions standing out in the job tree. */
import test from "ava";
// tsx compiles tests (outside tsconfig.json's include) with the classic JSX runtime, which needs React in scope.
import * as React from "react";
void React;
import { render } from "ink-testing-library";
import { PassThrough } from "node:stream";
import type { JobEvent } from "../../shared/protocol.js";
import { PlainSink } from "../../cli/sinks.js";
import { statusText, workerIdle, workerTable } from "../../cli/tables.js";
import { JobTree, treeHeight } from "../../cli/ui/JobTree.js";
import { initialTree, reduceTree, type TreeState } from "../../cli/ui/reducer.js";
import { StatusTable } from "../../cli/ui/StatusTable.js";
import { H, Q, W, end, narr } from "./helpers/events.js";

const NOW = Date.parse("2025-11-27T10:00:00.000Z");
const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();
const worker = (over: Record<string, unknown>) => ({
  worker_id: "w-1", hive_id: "localhost", url: "http://127.0.0.1:9001", pid: 1, model: "rbee-tiny", device: "cpu",
  state: "ready", gpu_layers: 0, total_layers: 4, parallel: 1, busy_slots: 0, keep_alive: 300, last_used: at(42), ...over,
});

test("workerIdle: left = keep_alive - idle, -1 forever, a busy worker has all of it, unknown stays unknown", (t) => {
  t.deepEqual(workerIdle(worker({}), NOW), { busy: false, idleS: 42, leftS: 258 });
  t.deepEqual(workerIdle(worker({ keep_alive: -1 }), NOW), { busy: false, idleS: 42, leftS: -1 });
  t.deepEqual(workerIdle(worker({ keep_alive: 10 }), NOW), { busy: false, idleS: 42, leftS: 0 }, "past due: never negative");
  t.deepEqual(workerIdle(worker({ state: "busy", busy_slots: 1 }), NOW), { busy: true, idleS: 0, leftS: 300 });
  t.deepEqual(workerIdle(worker({ parallel: 2, busy_slots: 1 }), NOW), { busy: true, idleS: 0, leftS: 300 }, "one busy slot of two");
  t.deepEqual(workerIdle(worker({ state: "starting" }), NOW), { busy: false, idleS: null, leftS: null });
  t.deepEqual(workerIdle(worker({ last_used: undefined, keep_alive: undefined }), NOW), { busy: false, idleS: null, leftS: null });
  t.deepEqual(workerIdle(worker({ last_used: at(-5) }), NOW), { busy: false, idleS: 0, leftS: 300 }, "a clock a little ahead is not negative idle");
});

test("workerTable and rbee status (plain): IDLE and KEEP-ALIVE LEFT columns", (t) => {
  const table = workerTable([worker({}), worker({ worker_id: "w-2", keep_alive: -1, last_used: at(3700) }), worker({ worker_id: "w-3", state: "busy", busy_slots: 1 })], NOW);
  t.deepEqual(table.headers.slice(4, 6), ["IDLE", "KEEP-ALIVE LEFT"]);
  t.deepEqual(table.rows.map((r) => r.slice(4, 6)), [["42 s", "4 min 18 s"], ["1 h 1 min", "forever"], ["busy", "5 min 0 s"]]);
  const text = statusText([{ hive_id: "localhost", state: "online", url: "http://127.0.0.1:9000", last_seen: at(1), devices: [], workers: [worker({})], models: [] }], NOW);
  t.regex(text, /WORKER\s+MODEL\s+STATE\s+SLOTS\s+IDLE\s+KEEP-ALIVE LEFT\s+DEVICE\s+GPU LAYERS\s+URL/);
  t.regex(text, /w-1\s+rbee-tiny\s+ready\s+0\/1\s+42 s\s+4 min 18 s\s+cpu\s+0\/4\s+http:/);
});

test("StatusTable (TUI): the same columns, forever for keep_alive -1; they fit 80 columns", (t) => {
  const hives = [{ hive_id: "localhost", state: "online", url: "u", last_seen: at(1), devices: [], workers: [worker({ worker_id: "localhost-w5BNZBWeU", keep_alive: -1, last_used: at(7) })], models: [] }];
  const { lastFrame, unmount } = render(<StatusTable hives={hives} now={NOW} />);
  const frame = lastFrame() ?? "";
  unmount();
  t.regex(frame, /IDLE\s+KEEP-ALIVE LEFT/);
  const header = frame.split("\n").find((l) => l.includes("KEEP-ALIVE LEFT")) ?? "";
  t.true(header.indexOf("KEEP-ALIVE LEFT") + "KEEP-ALIVE LEFT".length <= 80, header);
  t.regex(frame, /localhost-w5BNZBWeU .*ready\s+0\/1\s+7 s\s+forever\s+cpu/);
});

const evict = (path: string[], target: string): JobEvent => ({
  id: 900,
  event: "narration",
  data: {
    job_id: path.at(-1) as string, correlation_id: "corr-test00000001", path, actor: "rbee-hive", node: "localhost", action: "worker_evict", target,
    human: `Stopping idle worker ${target} (rbee-tiny, last used 40 s ago) to free about 120 MiB for big.`, level: "info", ts: "2025-11-27T10:00:00.000Z",
  },
});

const tree = (events: JobEvent[]): TreeState =>
  events.reduce((s, e) => reduceTree(s, { type: "event", event: e }), reduceTree(initialTree, { type: "created", jobId: Q, operation: "infer" }));

test("JobTree: an eviction is a warning line that stays while later narration scrolls by", (t) => {
  const s = tree([
    narr([Q], "queen-rbee", null, "Scheduling big."),
    narr([Q, H], "rbee-hive", "localhost", "No worker has big; spawning one."),
    evict([Q, H], "w-old"),
    ...["a", "b", "c", "d"].map((x) => narr([Q, H], "rbee-hive", "localhost", `step ${x}`)),
    narr([Q, H, W], "llm-worker-rbee", "w-new", "Generating."),
  ]);
  t.deepEqual(s.nodes[H]?.evictions, [{ workerId: "w-old", human: "Stopping idle worker w-old (rbee-tiny, last used 40 s ago) to free about 120 MiB for big." }]);
  t.false(s.nodes[H]?.narration.some((n) => n.action === "worker_evict"), "not repeated among the narration lines");
  const { lastFrame, unmount } = render(<JobTree tree={s} frame={0} />);
  const lines = (lastFrame() ?? "").split("\n");
  unmount();
  const at = lines.findIndex((l) => l.includes("⚠ evicted worker w-old (idle, LRU) to make room"));
  t.true(at > 0, lines.join("\n"));
  t.regex(lines[at - 1] ?? "", /rbee-hive localhost job-hive000001/, "right under the hive job that did it");
  t.false(lines.some((l) => l.includes("step a")), "narration keeps its last lines only");
  t.is(lines.length, treeHeight(s));
  // Still there in the final frame, once the job is over.
  const done = reduceTree(s, { type: "event", event: end([Q], "completed") });
  t.regex(render(<JobTree tree={done} frame={0} />).lastFrame() ?? "", /✔ rbee-hive localhost[\s\S]*⚠ evicted worker w-old/);
});

test("PlainSink: an eviction is a warning on stderr naming the worker", (t) => {
  const out = new PassThrough();
  const err = new PassThrough();
  let text = "";
  err.setEncoding("utf8").on("data", (d: string) => (text += d));
  const sink = new PlainSink(out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
  sink.created(Q, "infer");
  sink.event(evict([Q, H], "w-old"));
  sink.event(narr([Q, H], "rbee-hive", "localhost", "Spawning."));
  t.is(text, "[rbee-hive localhost] warning: evicted worker w-old (idle, LRU) to make room: Stopping idle worker w-old (rbee-tiny, last used 40 s ago) to free about 120 MiB for big.\n[rbee-hive localhost] Spawning.\n");
});
