import test from "ava";
import type { JobEvent } from "../../shared/protocol.js";
import { NARRATION_KEEP, flatten, initialTree, nodeLabel, reduceTree, summarize, type TreeState } from "../../cli/ui/reducer.js";
import { H, H2, L, Q, W, end, inferStream, narr, prog, tok, data } from "./helpers/events.js";

const run = (events: JobEvent[], from: TreeState = reduceTree(initialTree, { type: "created", jobId: Q, operation: "infer" })): TreeState =>
  events.reduce((s, e) => reduceTree(s, { type: "event", event: e }), from);

const statusOf = (s: TreeState, id: string) => s.nodes[id]?.status;

test("a whole infer nests by path: queen -> hive -> worker load and worker infer", (t) => {
  const s = run(inferStream(3));
  t.deepEqual(
    flatten(s).map(({ node, depth }) => [node.id, depth]),
    [[Q, 0], [H, 1], [L, 2], [W, 2]],
  );
  t.is(nodeLabel(s.nodes[Q]!, s), "queen-rbee");
  t.is(nodeLabel(s.nodes[H]!, s), "rbee-hive localhost");
  t.is(nodeLabel(s.nodes[W]!, s), "llm-worker-rbee w-1");
  t.is(s.text, "t0 t1 t2 ");
  t.is(s.tokens, 3);
  for (const id of [Q, H, L, W]) t.is(statusOf(s, id), "completed", id);
  t.deepEqual(summarize(s), {
    status: "completed",
    tokens: 3,
    usage: { prompt_tokens: 2, completion_tokens: 3 },
    timing: { ttft_ms: 120, total_ms: 1500, tokens_per_s: 42.5 },
    finishReason: "length",
  });
});

test("the root's label is its operation until it narrates", (t) => {
  const s = run([]);
  t.is(nodeLabel(s.nodes[Q]!, s), "infer");
  t.is(statusOf(s, Q), "running");
});

test("a child that shows up before its parent says anything is still nested under it", (t) => {
  const s = run([prog([Q, H, L], 1, 4), narr([Q, H], "rbee-hive", "localhost", "Spawning.")]);
  t.is(s.nodes[L]!.parentId, H);
  t.is(s.nodes[H]!.parentId, Q);
  t.deepEqual(s.nodes[Q]!.children, [H]);
  t.is(nodeLabel(s.nodes[H]!, s), "rbee-hive localhost");
  // The hive's own narration after the load's progress means the load moved on.
  t.is(statusOf(s, L), "completed");
  t.is(statusOf(s, H), "running");
});

test("a child is done once a later sibling or its parent moves on; it wakes if it speaks again", (t) => {
  let s = run([narr([Q, H, L], "llm-worker-rbee", "w-1", "Loading.")]);
  t.is(statusOf(s, L), "running");
  s = run([narr([Q, H, W], "llm-worker-rbee", "w-1", "Generating.")], s);
  t.is(statusOf(s, L), "completed");
  t.true(s.nodes[L]!.inferred);
  t.is(statusOf(s, W), "running");
  s = run([prog([Q, H, L], 4, 4)], s);
  t.is(statusOf(s, L), "running", "a node inferred done that emits again is running again");
  t.is(statusOf(s, W), "completed");
});

test("without a root end, the nodes on the active branch keep spinning", (t) => {
  const s = run(inferStream(2).slice(0, -1));
  t.is(statusOf(s, Q), "running");
  t.is(statusOf(s, H), "running");
  t.is(statusOf(s, W), "running");
  t.is(statusOf(s, L), "completed");
  t.is(summarize(s), null);
});

test("a failure marks the branch that was active failed and keeps finished siblings completed", (t) => {
  const s = run([
    narr([Q, H], "rbee-hive", "localhost", "Spawning worker."),
    prog([Q, H, L], 2, 4),
    narr([Q, H2], "rbee-hive", "gpu1", "Trying another hive."),
    narr([Q, H2, W], "llm-worker-rbee", "w-2", "Generating."),
    end([Q], "failed"),
  ]);
  t.is(statusOf(s, Q), "failed");
  t.deepEqual(s.nodes[Q]!.error, { code: "MODEL_NOT_FOUND", message: "No such model." });
  t.is(statusOf(s, H), "completed");
  t.is(statusOf(s, L), "completed");
  t.is(statusOf(s, H2), "failed");
  t.is(statusOf(s, W), "failed");
  t.is(summarize(s)?.status, "failed");
  t.is(summarize(s)?.error?.code, "MODEL_NOT_FOUND");
});

test("a cancel marks every running node cancelled", (t) => {
  let s = run([narr([Q, H, W], "llm-worker-rbee", "w-1", "Generating."), tok([Q, H, W], "a", 0)]);
  s = reduceTree(s, { type: "cancelling" });
  t.true(s.cancelling);
  s = run([end([Q], "cancelled")], s);
  for (const id of [Q, H, W]) t.is(statusOf(s, id), "cancelled", id);
  t.is(summarize(s)?.status, "cancelled");
  t.is(s.text, "a");
});

test("narration keeps the last lines per node; progress updates in place per action and target", (t) => {
  const s = run([
    ...Array.from({ length: 5 }, (_, i) => narr([Q], "queen-rbee", null, `line ${i}`)),
    prog([Q], 1, 10, "bytes", "download", "a.gguf"),
    prog([Q], 2, 10, "bytes", "download", "b.gguf"),
    prog([Q], 7, 10, "bytes", "download", "a.gguf"),
  ]);
  const q = s.nodes[Q]!;
  t.is(q.narration.length, NARRATION_KEEP);
  t.deepEqual(q.narration.map((l) => l.human), ["line 2", "line 3", "line 4"]);
  t.deepEqual(q.progress.map((p) => [p.target, p.done]), [["a.gguf", 7], ["b.gguf", 2]]);
});

test("data payloads are collected in order; the reducer never mutates the state it was given", (t) => {
  const before = run([narr([Q], "queen-rbee", null, "x")]);
  const frozen = JSON.stringify(before);
  const after = run([data([Q], "status", { hives: [] }), data([Q], "status", { n: 2 })], before);
  t.is(JSON.stringify(before), frozen);
  t.deepEqual(after.data.map((d) => d.payload), [{ hives: [] }, { n: 2 }]);
});

test("an event without a root created first makes its own root", (t) => {
  const s = run([narr([Q, H], "rbee-hive", "localhost", "x")], initialTree);
  t.deepEqual(s.roots, [Q]);
  t.is(nodeLabel(s.nodes[Q]!, s), Q);
});
