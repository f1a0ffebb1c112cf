import test, { type ExecutionContext } from "ava";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "../../cli/args.js";
import { CliError, EXIT } from "../../cli/exit-codes.js";
import { commandHelp, groupHelp, topHelp } from "../../cli/help.js";
import { locate, type Located } from "../../cli/locate.js";
import { resolveQueen } from "../../cli/queen.js";
import { validateLocally } from "../../cli/run-job.js";
import { ALL_COMMANDS, GLOBAL_FLAGS, GROUPS, INFER } from "../../cli/spec.js";
import { closest } from "../../cli/suggest.js";

const command = (argv: string[]) => {
  const l = locate(argv, "1.2.3");
  if (l.kind !== "command") throw new Error(`expected a command, got ${l.kind}`);
  return parseArgs(l.spec, l.argv, "1.2.3");
};

/** Asserts a usage error (exit status 2) with its message and, when given, its hint. */
const usage = (t: ExecutionContext, fn: () => unknown, message: RegExp, hint?: RegExp): void => {
  const err = t.throws(fn, { instanceOf: CliError });
  t.is(err?.exitCode, EXIT.usage);
  t.regex(err?.message ?? "", message);
  if (hint) t.regex(err?.hint ?? "", hint);
};

test("infer: prompt words, flags before and after, repeatable --stop, -- ends options", (t) => {
  const a = command(["--json", "infer", "hello", "--max-tokens", "5", "world", "--stop", "a", "--stop=b", "--ignore-eos", "--", "--literal"]);
  t.deepEqual(a.spec.path, ["infer"]);
  t.deepEqual(a.input, ["hello", "world", "--literal"]);
  t.is(a.flags["json"], true);
  t.is(a.flags["max-tokens"], "5");
  t.deepEqual(a.flags["stop"], ["a", "b"]);
  t.is(a.flags["ignore-eos"], true);
});

test("negative numbers are values, not flags", (t) => {
  const a = command(["infer", "hi", "--keep-alive", "-1"]);
  t.is(a.flags["keep-alive"], "-1");
});

test("subcommands, positionals and counts", (t) => {
  t.deepEqual(command(["model", "download", "hf:a/b/c.gguf", "--name", "c"]).input, ["hf:a/b/c.gguf"]);
  t.deepEqual(command(["hive", "status", "gpu1"]).input, ["gpu1"]);
  usage(t, () => command(["model", "get"]), /needs MODEL/);
  usage(t, () => command(["cancel", "job-1234567", "extra"]), /unexpected argument "extra"/);
  usage(t, () => command(["status", "now"]), /unexpected argument "now"/);
});

test("unknown commands and options are usage errors with a did-you-mean hint", (t) => {
  usage(t, () => locate(["infre"], "1"), /unknown command "infre"/, /rbee infer/);
  usage(t, () => locate(["model", "lst"], "1"), /unknown command "rbee model lst"/, /rbee model list/);
  usage(t, () => locate(["infer", "--modle", "x"], "1"), /unknown option --modle/, /--model/);
  usage(t, () => locate(["status", "--hive", "x"], "1"), /unknown option --hive for "rbee status"/);
  usage(t, () => locate(["zzzzzz"], "1"), /unknown command/, /See rbee --help/);
  usage(t, () => locate(["model"], "1"), /"rbee model" needs a command: list, get, download, import, delete/);
  usage(t, () => locate(["infer", "--model"], "1"), /--model needs a value/);
  usage(t, () => command(["infer", "--max-tokens", "1", "--max-tokens", "2"]), /--max-tokens can only be set once/);
});

test("--help anywhere shows the most specific help; --version; nothing shows the overview", (t) => {
  const help = (argv: string[]) => {
    const l: Located = locate(argv, "1.2.3");
    if (l.kind !== "help") throw new Error(l.kind);
    return l.text;
  };
  t.is(help(["infer", "--help"]), commandHelp(INFER));
  t.is(help(["--help", "infer"]), commandHelp(INFER));
  t.is(help(["infer", "--modle", "-h"]), commandHelp(INFER));
  t.is(help(["model", "--help"]), groupHelp(GROUPS.find((g) => g.name === "model")!));
  t.is(help(["--help"]), topHelp("1.2.3"));
  t.is(help([]), topHelp("1.2.3"));
  t.is(locate(["--version"], "1").kind, "version");
  t.is(locate(["status", "-v"], "1").kind, "version");
  t.regex(help(["infer", "--help"]), /--max-tokens N/);
  t.regex(help(["infer", "--help"]), /--queen-url URL/);
});

test("closest suggests typos and prefixes only", (t) => {
  t.is(closest("stauts", ["status", "infer"]), "status");
  t.is(closest("dow", ["download", "delete"]), "download");
  t.is(closest("banana", ["status", "infer"]), undefined);
});

test("local validation maps operation fields to the flags that set them", (t) => {
  usage(t, () => validateLocally({ operation: "infer", prompt: "x", temperature: 5 }), /^--temperature: must be at most 2/);
  usage(t, () => validateLocally({ operation: "infer", prompt: "x", stop: ["a", ""] }), /^--stop: must not be empty/);
  usage(t, () => validateLocally({ operation: "worker_spawn", gpu_layers: "lots" }), /^--gpu-layers:/);
  usage(t, () => validateLocally({ operation: "model_get", model: "../etc" }), /^the model:/);
  t.notThrows(() => validateLocally({ operation: "infer", prompt: "x", max_tokens: 3, keep_alive: -1 }));
});

test("the queen URL: flag, then RBEE_QUEEN_URL, then the default (port movable for tests)", (t) => {
  t.deepEqual(resolveQueen(undefined, {}), { url: "http://127.0.0.1:8500", isDefault: true, from: "default" });
  t.deepEqual(resolveQueen(undefined, { RBEE_DEFAULT_QUEEN_PORT: "18500" }), { url: "http://127.0.0.1:18500", isDefault: true, from: "default" });
  t.deepEqual(resolveQueen(undefined, { RBEE_QUEEN_URL: "http://q:1/" }), { url: "http://q:1", isDefault: false, from: "RBEE_QUEEN_URL" });
  t.deepEqual(resolveQueen("http://x:2", { RBEE_QUEEN_URL: "http://q:1" }), { url: "http://x:2", isDefault: false, from: "--queen-url" });
  usage(t, () => resolveQueen("not a url", {}), /is not a URL/);
  usage(t, () => resolveQueen("ftp://x", {}), /http:\/\/ or https:\/\//);
  usage(t, () => resolveQueen(undefined, { RBEE_DEFAULT_QUEEN_PORT: "99999" }), /RBEE_DEFAULT_QUEEN_PORT/);
});

test("the man page names every command and every option --help shows, and renders without warnings", (t) => {
  const man = readFileSync(new URL("../../man/rbee.1", import.meta.url), "utf8");
  // roff escapes dashes; compare against the text with \- turned back into -.
  const text = man.replace(/\\-/g, "-");
  for (const c of ALL_COMMANDS) {
    t.true(text.includes(`rbee ${c.path[0]}`) && (c.path.length === 1 || text.includes(c.path[1] as string)), `man page lacks ${c.path.join(" ")}`);
    for (const f of c.flags) t.true(text.includes(`--${f.name}`), `man page lacks --${f.name} of ${c.path.join(" ")}`);
  }
  for (const f of GLOBAL_FLAGS) t.true(text.includes(`--${f.name}`), `man page lacks --${f.name}`);
  for (const word of ["RBEE_QUEEN_URL", "RBEE_TOKEN", "RBEE_HOME", "RBEE_DEFAULT_QUEEN_PORT", "130"]) t.true(text.includes(word), word);
  const groff = spawnSync("groff", ["-man", "-Tutf8", "-ww", "-z", "man/rbee.1"], { encoding: "utf8" });
  if ((groff.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return t.log("groff is not installed; skipped the render check");
  t.is(groff.status, 0);
  t.is(groff.stderr, "", "groff warns about nothing");
});
