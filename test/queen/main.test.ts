import test from "ava";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { ROOT, daemonEnv, dist } from "../_helpers/daemon.js";
import { makeHome, tempHome } from "../_helpers/temp.js";

const queen = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [dist("queen"), ...args], { env: daemonEnv(env), encoding: "utf8", timeout: 30_000 });

test("--help lists every flag, and the man page documents each of them", async (t) => {
  const r = queen(["--help"]);
  t.is(r.status, 0);
  const flags = [...r.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!);
  for (const f of ["--port", "--host", "--heartbeat-timeout", "--job-ttl", "--max-finished-jobs", "--advertise-url", "--token-file", "--log-file", "--help", "--version"]) {
    t.true(flags.includes(f), `--help shows ${f}`);
  }
  const man = (await readFile(path.join(ROOT, "man", "queen-rbee.8"), "utf8")).replace(/\\-/g, "-");
  for (const f of flags) t.true(man.includes(f), `the man page documents ${f}`);
  t.regex(queen(["--version"]).stdout, /^queen-rbee \d+\.\d+\.\d+/);
});

test("usage errors exit 2 with one line naming the problem", async (t) => {
  const home = await tempHome(t);
  const cases: Array<[string[], RegExp]> = [
    [["--heartbeat-timeout", "x"], /--heartbeat-timeout/],
    [["--job-ttl=-5"], /--job-ttl/],
    [["--advertise-url", "ftp://nope"], /--advertise-url/],
    [["--host", "0.0.0.0"], /token/],
    [["--bogus"], /bogus/],
  ];
  for (const [args, why] of cases) {
    const r = queen(["--port", "0", ...args], { RBEE_HOME: home });
    t.is(r.status, 2, args.join(" "));
    t.regex(r.stderr, why);
    t.is(r.stderr.trim().split("\n").length, 1);
  }
});

test("a broken hives.conf stops the start with the file and line", async (t) => {
  const home = await makeHome(t, { hivesConf: "Host ok\n  HivePort lots\n" });
  const r = queen(["--port", "0"], { RBEE_HOME: home });
  t.is(r.status, 2);
  t.regex(r.stderr, /hives\.conf:2: HivePort/);
});
