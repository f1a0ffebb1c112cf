/** What the keeper loads at start-up: --help and --version stay free of meow, undici, Ink and React; scripted runs free of Ink and React. */
import test from "ava";
import { spawnSync } from "node:child_process";
import { ROOT } from "../_helpers/daemon.js";
import { freePort } from "../_helpers/process.js";
import { KEEPER, assertBuilt, cleanEnv } from "./helpers/keeper.js";

test.before(() => assertBuilt());

function loaded(args: string[]): { code: number | null; packages: string[]; urls: string[] } {
  const r = spawnSync(process.execPath, ["--import", "./test/cli/helpers/trace-imports.mjs", KEEPER, ...args], { cwd: ROOT, env: cleanEnv(), encoding: "utf8" });
  const line = r.stderr.split("\n").find((l) => l.startsWith("TRACE_IMPORTS ")) ?? "TRACE_IMPORTS []";
  const urls = JSON.parse(line.slice("TRACE_IMPORTS ".length)) as string[];
  const packages = new Set(urls.map((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((p): p is string => p !== undefined));
  return { code: r.status, packages: [...packages].sort(), urls };
}

test("--help and --version load no package at all", (t) => {
  for (const args of [["--help"], ["--version"], ["infer", "--help"], ["model", "download", "--help"]]) {
    const r = loaded(args);
    t.is(r.code, 0, args.join(" "));
    t.deepEqual(r.packages, [], args.join(" "));
  }
});

test("a scripted infer loads meow and undici's client but not undici's index, Ink or React", async (t) => {
  const r = loaded(["infer", "x", "--queen-url", `http://127.0.0.1:${await freePort()}`]);
  t.is(r.code, 3);
  t.true(r.packages.includes("meow"), r.packages.join(","));
  t.true(r.packages.includes("undici"), r.packages.join(","));
  t.true(r.urls.some((u) => u.endsWith("/undici/lib/dispatcher/agent.js")), "undici's Agent is loaded");
  t.false(r.urls.some((u) => u.endsWith("/undici/index.js")), "undici's index (fetch, WebSocket, caches) is not");
  for (const heavy of ["ink", "react", "react-reconciler", "yoga-layout"]) t.false(r.packages.includes(heavy), heavy);
});
