/**
 * Queen auto-start and `rbee queen start|stop|status`, with a stand-in queen: the keeper runs from a
 * copy of dist/ whose daemons/queen/main.js is the fake queen, so binaryCommand("queen-rbee") starts it.
 * The default URL's port is moved with RBEE_DEFAULT_QUEEN_PORT so 8500 is never needed.
 */
import test from "ava";
import { cp, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Teardown } from "../_helpers/cleanup.js";
import { ROOT } from "../_helpers/daemon.js";
import { alive, freePort } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { assertBuilt, cleanEnv, runKeeper } from "./helpers/keeper.js";

test.before(() => assertBuilt());

/** A private install: dist/cli and dist/shared copied, the given queen main.js, node_modules linked. */
async function install(t: Teardown, queenMain: string): Promise<string> {
  const dir = await tempHome(t, "rbee-keeper-");
  await cp(join(ROOT, "dist/cli"), join(dir, "dist/cli"), { recursive: true });
  await cp(join(ROOT, "dist/shared"), join(dir, "dist/shared"), { recursive: true });
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  await writeFile(join(dir, "package.json"), JSON.stringify({ name: "rbee", version: "0.1.0", type: "module" }));
  await mkdir(join(dir, "dist/daemons/queen"), { recursive: true });
  await writeFile(join(dir, "dist/daemons/queen/main.js"), queenMain);
  return join(dir, "dist/cli/rbee.js");
}

const FAKE_QUEEN_MAIN = [
  `import { register } from ${JSON.stringify(pathToFileURL(join(ROOT, "node_modules/tsx/dist/esm/api/index.mjs")).href)};`,
  "register();",
  `await import(${JSON.stringify(pathToFileURL(join(ROOT, "test/cli/helpers/fake-queen-main.ts")).href)});`,
].join("\n");

async function pidIn(home: string): Promise<number | undefined> {
  const text = await readFile(join(home, "state", "queen-rbee.pid"), "utf8").catch(() => "");
  return Number(text.trim()) || undefined;
}

/** The private install with the fake queen, a home, and the default queen port moved to a free one; the queen is killed at teardown. */
async function withFakeQueen(t: Teardown): Promise<{ entry: string; home: string; port: number; env: NodeJS.ProcessEnv }> {
  const entry = await install(t, FAKE_QUEEN_MAIN);
  const home = await tempHome(t, "rbee-keeper-");
  const port = await freePort();
  t.teardown(async () => {
    const pid = await pidIn(home);
    if (pid && alive(pid)) process.kill(pid, "SIGKILL");
  });
  return { entry, home, port, env: cleanEnv({ RBEE_HOME: home, RBEE_DEFAULT_QUEEN_PORT: String(port) }) };
}

test("with the default URL and no queen, the keeper starts one, records its pid, and queen stop ends it", async (t) => {
  const { entry, home, port, env } = await withFakeQueen(t);

  const first = await runKeeper(["infer", "hello", "--max-tokens", "3", "--json"], { env, entry, timeoutMs: 60_000 });
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, new RegExp(`^rbee: Starting queen-rbee on http://127\\.0\\.0\\.1:${port} \\(log: .*queen-rbee\\.log\\)$`, "m"));
  t.regex(first.stderr, /^rbee: queen-rbee is up on .* \(pid \d+\)\.$/m);
  t.true(first.stdout.trimEnd().split("\n").every((l) => (JSON.parse(l) as { event?: string }).event !== undefined), "stdout holds only events");
  const pid = await pidIn(home);
  t.truthy(pid, "the keeper wrote the pid file the fake queen does not");
  t.true(alive(pid as number));
  t.regex(await readFile(join(home, "state", "queen-rbee.log"), "utf8"), /listening http:\/\/127\.0\.0\.1/);

  const second = await runKeeper(["status"], { env, entry });
  t.is(second.code, 0, second.stderr);
  t.notRegex(second.stderr, /Starting queen-rbee/, "a running queen is reused");

  const status = await runKeeper(["queen", "status"], { env, entry });
  t.is(status.code, 0);
  t.is(status.stdout, `queen-rbee 0.0.0-fake is up at http://127.0.0.1:${port} (pid ${pid}).\n`);

  const stop = await runKeeper(["queen", "stop"], { env, entry, timeoutMs: 60_000 });
  t.is(stop.code, 0, stop.stderr);
  t.is(stop.stdout, `Stopped queen-rbee (pid ${pid}).\n`);
  t.false(alive(pid as number));
  t.is(await pidIn(home), undefined, "the pid file is gone");

  const down = await runKeeper(["queen", "status", "--json"], { env, entry });
  t.is(down.code, 3);
  t.deepEqual(JSON.parse(down.stdout), { url: `http://127.0.0.1:${port}`, status: "down" });
  const again = await runKeeper(["queen", "stop"], { env, entry });
  t.is(again.code, 0);
  t.is(again.stdout, "queen-rbee is not running.\n");
});

test("rbee queen start starts it explicitly and says so once it is running", async (t) => {
  const { entry, port, env } = await withFakeQueen(t);
  const start = await runKeeper(["queen", "start", "--json"], { env, entry, timeoutMs: 60_000 });
  t.is(start.code, 0, start.stderr);
  t.like(JSON.parse(start.stdout), { url: `http://127.0.0.1:${port}`, service: "queen-rbee", started: true });
  const twice = await runKeeper(["queen", "start"], { env, entry });
  t.is(twice.code, 0);
  t.regex(twice.stdout, /already running/);
  t.is((await runKeeper(["queen", "stop"], { env, entry, timeoutMs: 60_000 })).code, 0);
});

test("a queen that dies at start is exit 3 with the end of its log", async (t) => {
  const entry = await install(t, 'process.stderr.write("queen-rbee: cannot listen: port taken.\\n");\nprocess.exit(1);\n');
  const home = await tempHome(t, "rbee-keeper-");
  const env = cleanEnv({ RBEE_HOME: home, RBEE_DEFAULT_QUEEN_PORT: String(await freePort()) });
  const r = await runKeeper(["status"], { env, entry, timeoutMs: 60_000 });
  t.is(r.code, 3);
  t.regex(r.stderr, /queen-rbee exited \(status 1\) before answering/);
  t.regex(r.stderr, /queen-rbee: cannot listen: port taken\./);
});
