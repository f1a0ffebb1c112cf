// First, before Ink is imported anywhere: live frames are under test.
import "./helpers/ink-live.js";
import test from "ava";
// tsx compiles tests (outside tsconfig.json's include) with the classic JSX runtime, which needs React in scope.
import * as React from "react";
void React;
import { render } from "ink-testing-library";
import type { JobEvent } from "../../shared/protocol.js";
import { JobStore } from "../../cli/ui/job-store.js";
import { JobTree, treeHeight } from "../../cli/ui/JobTree.js";
import { JobView } from "../../cli/ui/JobView.js";
import { ProgressBar } from "../../cli/ui/ProgressBar.js";
import { initialTree, reduceTree, type TreeState } from "../../cli/ui/reducer.js";
import { StatusTable } from "../../cli/ui/StatusTable.js";
import { Summary } from "../../cli/ui/Summary.js";
import { tailText } from "../../cli/ui/text-tail.js";
import { FAKE_STATUS } from "./helpers/fake-queen.js";
import { H, L, Q, W, end, inferStream, narr, prog, tok } from "./helpers/events.js";
import { waitFor } from "../_helpers/wait.js";

const tree = (events: JobEvent[], operation = "infer"): TreeState =>
  events.reduce((s, e) => reduceTree(s, { type: "event", event: e }), reduceTree(initialTree, { type: "created", jobId: Q, operation }));


test("JobTree: nested labels, a spinner while running, narration under each node", (t) => {
  const s = tree(inferStream(2).slice(0, -1));
  const { lastFrame, unmount } = render(<JobTree tree={s} frame={0} />);
  const lines = (lastFrame() ?? "").split("\n");
  unmount();
  t.regex(lines[0] ?? "", /^⠋ queen-rbee job-queen00001/);
  t.true(lines.some((l) => /^ {2}⠋ rbee-hive localhost job-hive000001/.test(l)));
  t.true(lines.some((l) => /^ {4}✔ llm-worker-rbee w-1 job-load000001/.test(l)), "the finished load job has a check");
  t.true(lines.some((l) => /^ {4}⠋ llm-worker-rbee w-1 job-work000001/.test(l)));
  t.true(lines.some((l) => l.includes("Worker w-1 is ready.")));
  t.true(lines.some((l) => /100% 4\/4 layers/.test(l)));
  t.is(lines.length, treeHeight(s));
});

test("JobTree: a failed job shows crosses on the failed branch; its error is left to the summary", (t) => {
  const s = tree([narr([Q, H], "rbee-hive", "localhost", "Spawning."), end([Q], "failed")]);
  const frame = render(<JobTree tree={s} frame={3} />).lastFrame() ?? "";
  t.regex(frame, /^✘ infer job-queen00001/, "a root that never narrated is labelled by its operation");
  t.regex(frame, /✘ rbee-hive localhost/);
  t.notRegex(frame, /MODEL_NOT_FOUND/);
  t.is(frame.split("\n").length, treeHeight(s));
});

test("ProgressBar: bytes in human sizes with a bar; layers as n/N; no bar without a total", (t) => {
  const bytes = render(<ProgressBar action="download" target="tiny.gguf" done={512 * 1024 ** 2} total={1024 ** 3} unit="bytes" width={10} />).lastFrame();
  t.is(bytes, "█████░░░░░  50% 512 MiB / 1.00 GiB download tiny.gguf");
  const layers = render(<ProgressBar action="load_model" target={null} done={12} total={32} unit="layers" width={8} />).lastFrame();
  t.is(layers, "███░░░░░  37% 12/32 layers load_model");
  const open = render(<ProgressBar action="download" target="x" done={1536} total={null} unit="bytes" />).lastFrame();
  t.is(open, "1.50 KiB download x");
});

test("Summary: tokens, tokens/s and time to first token from end.timing and usage", (t) => {
  const done = render(<Summary tree={tree(inferStream(3))} elapsedMs={1600} />).lastFrame() ?? "";
  t.regex(done, /✔ 3 tokens, 42\.5 tokens\/s, first token 120 ms, total 1\.50 s/);
  const failed = render(<Summary tree={tree([end([Q], "failed")])} elapsedMs={5} />).lastFrame() ?? "";
  t.is(failed, "✘ failed: MODEL_NOT_FOUND: No such model.");
  const cancelled = render(<Summary tree={tree([end([Q], "cancelled")])} elapsedMs={5} />).lastFrame() ?? "";
  t.is(cancelled, "✘ cancelled");
  const other = render(<Summary tree={tree([end([Q], "completed")], "status")} elapsedMs={250} />).lastFrame() ?? "";
  t.is(other, "✔ completed in 250 ms");
});

test("StatusTable: hives with devices, workers and models", (t) => {
  const frame = render(<StatusTable hives={FAKE_STATUS.hives} />).lastFrame() ?? "";
  t.regex(frame, /hive localhost online http:\/\/127\.0\.0\.1:9000/);
  t.regex(frame, /DEVICE\s+KIND\s+NAME\s+MEMORY FREE \/ TOTAL/);
  t.regex(frame, /cpu\s+cpu\s+Fake CPU\s+8\.00 GiB \/ 16\.0 GiB/);
  t.regex(frame, /w-test-1\s+rbee-tiny\s+ready\s+1\/2\s+busy\s+5 min 0 s\s+cpu\s+0\/4/);
  t.regex(frame, /rbee-tiny\s+3\.00 MiB\s+llama\s+F32\s+1\.20M\s+512\s+4/);
  t.is(render(<StatusTable hives={[]} />).lastFrame(), "No hives.");
});

test("JobView: live tree and text tail, then the whole text and the summary once done", async (t) => {
  const store = new JobStore(10);
  const app = render(<JobView store={store} />);
  store.dispatch({ type: "created", jobId: Q, operation: "infer" });
  for (const e of inferStream(5).slice(0, -1)) store.dispatch({ type: "event", event: e });
  await waitFor("the live frame to show t4", () => (app.lastFrame() ?? "").includes("t4"), 15_000, 10);
  t.regex(app.lastFrame() ?? "", /⠋|⠙|⠹|⠸|⠼|⠴|⠦|⠧|⠇|⠏/);
  store.dispatch({ type: "event", event: inferStream(5).at(-1) as JobEvent });
  store.finish(1700);
  await waitFor("the final frame's summary", () => (app.lastFrame() ?? "").includes("tokens/s"), 15_000, 10);
  const frame = app.lastFrame() ?? "";
  app.unmount();
  t.regex(frame, /✔ queen-rbee/);
  t.regex(frame, /t0 t1 t2 t3 t4/);
  t.regex(frame, /✔ 5 tokens, 42\.5 tokens\/s, first token 120 ms/);
  t.notRegex(frame, /⠋|⠙|⠹/);
});

test("JobStore: many events publish once per interval, not once per event", async (t) => {
  const store = new JobStore(40);
  let published = 0;
  store.subscribe(() => published++);
  const first = store.getSnapshot();
  store.dispatch({ type: "created", jobId: Q, operation: "infer" });
  for (let i = 0; i < 500; i++) store.dispatch({ type: "event", event: tok([Q, H, W], "x", i) });
  t.is(store.getSnapshot(), first, "nothing is published before the interval");
  t.is(store.current.tree.tokens, 500);
  await waitFor("a publish", () => published > 0, 15_000, 10);
  t.is(published, 1);
  t.is(store.getSnapshot().tree.tokens, 500);
});

test("tailText keeps the end of the text that fits the rows left", (t) => {
  t.is(tailText("a\nb\nc\nd", 10, 2), "c\nd");
  t.is(tailText("0123456789abcdefghij", 5, 2), "abcde\nfghij", "cut into rows as a terminal wraps");
  t.is(tailText("0123456789abcdefghi", 5, 2), "abcde\nfghi", "keeps whole rows from the line's start");
  t.is(tailText("xy\n0123456789", 5, 3), "xy\n01234\n56789");
  t.is(tailText("a\n\nb", 5, 3), "a\n\nb", "blank lines take a row");
  t.is(tailText("anything", 80, 0), "");
  const long = "word ".repeat(100_000);
  t.true(tailText(long, 80, 5).length <= 400);
});

test("treeHeight counts every line the tree draws", (t) => {
  const s = tree([narr([Q], "queen-rbee", null, "a"), prog([Q, H, L], 1, 2), narr([Q, H, L], "w", null, "b")]);
  t.is(treeHeight(s), 1 + 1 + 1 + 1 + 1 + 1);
});
