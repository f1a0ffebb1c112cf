/** Which face the keeper shows: the TUI only where Ink can draw live frames on a terminal. */
import test from "ava";
import { outputMode } from "../../cli/context.js";

const tty = { isTTY: true };

test("--json wins; a terminal gets the TUI; a pipe gets plain text", (t) => {
  t.is(outputMode(true, tty, {}), "json");
  t.is(outputMode(true, {}, {}), "json");
  t.is(outputMode(false, tty, { TERM: "xterm-256color" }), "tui");
  t.is(outputMode(false, {}, { TERM: "xterm-256color" }), "plain");
  t.is(outputMode(false, { isTTY: false }, {}), "plain");
});

test("TERM=dumb and CI get plain text even on a terminal; CI=0 and CI=false do not count", (t) => {
  t.is(outputMode(false, tty, { TERM: "dumb" }), "plain");
  t.is(outputMode(false, tty, { CI: "true" }), "plain");
  t.is(outputMode(false, tty, { CI: "" }), "plain", "set but empty counts, as it does for Ink");
  t.is(outputMode(false, tty, { CONTINUOUS_INTEGRATION: "1" }), "plain");
  t.is(outputMode(false, tty, { CI: "0" }), "tui");
  t.is(outputMode(false, tty, { CI: "false" }), "tui");
});
