/** The keeper under a real pseudo-terminal (util-linux `script`), against the fake queen: the Ink TUI on screen. */
import test from "ava";
import { spawnSync } from "node:child_process";
import { tempHome } from "../_helpers/temp.js";
import { startFakeQueen } from "./helpers/fake-queen.js";
import { assertBuilt, cleanEnv, plain, underPty } from "./helpers/keeper.js";

const hasScript = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;
const ttyTest = hasScript ? test : test.skip;

test.before(() => assertBuilt());

// Ink's "the frame outgrew the screen, redraw everything" path clears the terminal: the flicker to avoid.
const CLEAR_SCREEN = /\x1b\[2J|\x1b\[3J/;

ttyTest("on a terminal: the job tree with checks, the streamed tokens and the summary", async (t) => {
  const queen = await startFakeQueen();
  t.teardown(() => queen.close());
  const env = cleanEnv({ RBEE_HOME: await tempHome(t), RBEE_QUEEN_URL: queen.url });
  const { code, screen } = await underPty(["infer", "hello", "--max-tokens", "12"], env);
  t.is(code, 0, screen);
  t.true(screen.includes("\x1b["), "drawn with escape codes");
  const text = plain(screen);
  t.regex(text, /✔ queen-rbee job-\w+/);
  t.regex(text, /^ {2}✔ rbee-hive localhost job-hive/m);
  t.regex(text, /^ {4}✔ llm-worker-rbee w-test-1 job-load/m);
  t.regex(text, /^ {4}✔ llm-worker-rbee w-test-1 job-work/m);
  t.regex(text, /Worker w-test-1 is ready\./);
  t.regex(text, /100% 4\/4 layers/);
  t.regex(text, /alpha bravo charlie delta echo foxtrot golf hotel alpha bravo charlie delta/);
  t.regex(text, /✔ 12 tokens, [\d.]+ tokens\/s, first token \d+ ms/);
});

ttyTest("a long stream stays within the screen (no full redraws) and ends with the whole text", async (t) => {
  const queen = await startFakeQueen();
  t.teardown(() => queen.close());
  const env = cleanEnv({ RBEE_HOME: await tempHome(t), RBEE_QUEEN_URL: queen.url });
  const { code, screen } = await underPty(["infer", "steady please", "--max-tokens", "600"], env, { columns: 80, lines: 24 });
  t.is(code, 0, screen);
  t.notRegex(screen, CLEAR_SCREEN);
  const text = plain(screen);
  t.regex(text, /✔ 600 tokens/);
  // The final frame prints the whole text once: 600 words, 75 of each.
  const final = text.slice(text.lastIndexOf("✔ queen-rbee"));
  t.is(final.match(/alpha/g)?.length, 75);
});
