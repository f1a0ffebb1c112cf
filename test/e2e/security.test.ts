/**
 * Links secured, checked on the real daemons: loopback by default, no open bind without a token,
 * every route but GET /health behind the token (queen, hive, worker), the token carried down the
 * cascade and never shown (argv, logs, narration), and no wildcard CORS anywhere.
 */
import test from "ava";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { checkBearer } from "../../shared/job-server.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { http } from "../_helpers/http.js";
import { pidsMentioning } from "../_helpers/process.js";
import { makeHome, tinyModel } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { filesUnder, hiveStatus, runJob, spawnDaemon, startHive, startQueen } from "./e2e-helpers.js";

const run = daemonsBuilt ? test : test.skip;
const TOKEN = `rbee-test-${randomBytes(12).toString("hex")}`;
const auth = (token = TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` });

test("the bearer check accepts exactly the token, whatever the lengths (hashed, then compared in constant time)", (t) => {
  t.true(checkBearer(`Bearer ${TOKEN}`, TOKEN));
  t.true(checkBearer(`bearer ${TOKEN}`, TOKEN), "the scheme is case-insensitive");
  for (const h of [undefined, "", "Bearer", "Bearer ", `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, TOKEN, `Bearer  ${TOKEN}`, `Bearer ${"x".repeat(10_000)}`]) {
    t.false(checkBearer(h, TOKEN), String(h).slice(0, 40));
  }
});

run("loopback by default; an open bind without a token refuses to start, exit 2 and one line, for all three daemons", async (t) => {
  const home = await makeHome(t);
  const model = await tinyModel(t);
  const env = { RBEE_HOME: home };
  const extra = { queen: [], hive: [], worker: ["--model", model, "--device", "cpu"] } as const;
  const names = { queen: "queen-rbee", hive: "rbee-hive", worker: "llm-worker-rbee" } as const;
  const emptyToken = path.join(home, "empty-token");
  await writeFile(emptyToken, "\n");
  await Promise.all((["queen", "hive", "worker"] as const).map(async (d) => {
    const local = await spawnDaemon(t, d, ["--port", "0", ...extra[d]], { env });
    t.regex(local.url, /^http:\/\/127\.0\.0\.1:\d+$/, `${d} binds loopback by default`);
    await local.stop();
    for (const [args, token] of [[["--host", "0.0.0.0"], undefined], [["--host", "::"], ""], [["--host", "10.1.2.3"], "  "], [["--host", "0.0.0.0", "--token-file", emptyToken], undefined]] as const) {
      const p = await spawnDaemon(t, d, ["--port", "0", ...args, ...extra[d]], { env: { ...env, ...(token !== undefined ? { RBEE_TOKEN: token } : {}) }, noWait: true });
      const code = await p.exited;
      const out = p.output();
      t.is(code, 2, `${d} ${args.join(" ")}: ${out}`);
      t.is(out.trim().split("\n").length, 1, out);
      t.true(out.startsWith(`${names[d]}: `), out);
      t.regex(out, /token|empty/);
    }
  }));
  // With a token an open bind is allowed, and the token is asked for.
  const open = await spawnDaemon(t, "queen", ["--port", "0", "--host", "0.0.0.0"], { env: { ...env, RBEE_TOKEN: TOKEN } });
  t.regex(open.url, /^http:\/\/0\.0\.0\.0:\d+$/);
  const port = new URL(open.url).port;
  t.is((await http(`http://127.0.0.1:${port}/v1/info`)).status, 401);
  t.is((await http(`http://127.0.0.1:${port}/v1/info`, { headers: auth() })).status, 200);
});

/** Routes of each daemon, each of which must answer 401 UNAUTHORIZED without the token. */
const COMMON = [["GET", "/v1/info"], ["GET", "/v1/jobs"], ["POST", "/v1/jobs"], ["GET", "/v1/jobs/job-abcdefgh/stream"], ["DELETE", "/v1/jobs/job-abcdefgh"], ["GET", "/metrics"], ["GET", "/nope"], ["OPTIONS", "/v1/jobs"], ["HEAD", "/v1/info"]] as const;
const QUEEN_ONLY = [["POST", "/v1/hives/heartbeat"], ["GET", "/v1/models"], ["POST", "/v1/chat/completions"], ["POST", "/v1/completions"], ["POST", "/v1/embeddings"]] as const;

async function checkLocked(t: import("ava").ExecutionContext, who: string, url: string, routes: readonly (readonly [string, string])[]): Promise<void> {
  for (const [method, route] of routes) {
    for (const headers of [{}, auth("wrong"), auth(`${TOKEN}x`), { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` }]) {
      const r = await http(`${url}${route}`, { method, headers: { origin: "http://evil.example", ...headers }, ...(method === "POST" ? { body: "{}" } : {}) });
      const what = `${who} ${method} ${route} ${JSON.stringify(headers)}: ${r.status} ${r.text.slice(0, 200)}`;
      t.is(r.status, 401, what);
      if (method !== "HEAD") t.is(r.json?.error?.code, "UNAUTHORIZED", what);
      if (route.startsWith("/v1/chat") || route === "/v1/models") t.deepEqual(Object.keys(r.json?.error ?? {}).sort(), ["code", "message", "param", "type"], what);
      t.not(r.headers["access-control-allow-origin"], "*", what);
      t.false(r.text.includes(TOKEN), what);
    }
  }
  const health = await http(`${url}/health`, { headers: { origin: "http://evil.example" } });
  t.is(health.status, 200, `${who} /health is open`);
  t.not(health.headers["access-control-allow-origin"], "*");
  const preflight = await http(`${url}/v1/jobs`, { method: "OPTIONS", headers: { ...auth(), origin: "http://evil.example", "access-control-request-method": "POST" } });
  t.true(preflight.status < 500, `${who} preflight: ${preflight.status}`);
  t.is(preflight.headers["access-control-allow-origin"], undefined, `${who} preflight allows no origin`);
  const ok = await http(`${url}/v1/info`, { headers: { ...auth(), origin: "http://evil.example" } });
  t.is(ok.status, 200, `${who} with the token`);
  t.is(ok.headers["access-control-allow-origin"], undefined);
}

run("with a token: every route but /health needs it, on queen, hive and worker; the queen hands it down; it is never shown", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home, [], { env: { RBEE_TOKEN: TOKEN } });
  const external = await startHive(t, home, "h1", queen.url, [], { env: { RBEE_TOKEN: TOKEN } });

  // The cascade with the token: the queen starts localhost with it, the hive gives it to its worker.
  const infer = await runJob(queen.url, { operation: "infer", hive_id: "localhost", prompt: "secret bees", max_tokens: 3, ignore_eos: true }, { token: TOKEN });
  t.is(infer.end.status, "completed", JSON.stringify(infer.end));
  t.is(infer.end.usage?.completion_tokens, 3);
  const spawn = await runJob(queen.url, { operation: "worker_spawn", hive_id: "h1" }, { token: TOKEN });
  t.is(spawn.end.status, "completed", JSON.stringify(spawn.end));
  // The worker shows in the next heartbeat.
  const local = await waitFor("the worker in status", async () => {
    const h = await hiveStatus(queen.url, "localhost", TOKEN);
    return h?.workers[0] ? h : undefined;
  }, 30_000);
  const worker = local?.workers[0];
  t.truthy(local?.url && worker?.url, JSON.stringify(local));
  t.is((await hiveStatus(queen.url, "h1", TOKEN))?.state, "online", "heartbeats carry the token");

  await checkLocked(t, "queen", queen.url, [...COMMON, ...QUEEN_ONLY]);
  await checkLocked(t, "hive", local!.url!, [...COMMON, ["POST", "/v1/shutdown"]]);
  await checkLocked(t, "hive h1", external.url, [["POST", "/v1/jobs"]]);
  await checkLocked(t, "worker", worker!.url, [...COMMON, ["POST", "/v1/shutdown"]]);
  const direct = await runJob(worker!.url, { operation: "infer", prompt: "with the token", max_tokens: 1 }, { token: TOKEN });
  t.is(direct.end.status, "completed", "the worker serves whoever has the token");

  // Never in argv, logs or narration.
  const pids = await pidsMentioning(home);
  t.true(pids.length >= 5, `queen, two hives and two workers: ${pids.length}`);
  for (const pid of pids) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ");
    t.false(argv.includes(TOKEN), `pid ${pid} argv: ${argv.slice(0, 200)}`);
  }
  const files = await filesUnder(home);
  t.true(files.some((f) => f.endsWith("queen-rbee.log")) && files.some((f) => /llm-worker-rbee-.*\.log$/.test(f)), files.join(" "));
  for (const f of files.filter((f) => !f.endsWith(".gguf"))) t.false((await readFile(f, "utf8")).includes(TOKEN), `${f} holds the token`);
  for (const r of [infer, spawn]) t.false(JSON.stringify(r.events).includes(TOKEN), "narration holds the token");
});

run("without a token Authorization is ignored and no CORS header is sent either", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home);
  for (const headers of [{}, auth("anything"), { origin: "http://evil.example" }]) {
    const r = await http(`${queen.url}/v1/jobs`, { headers });
    t.is(r.status, 200);
    t.is(r.headers["access-control-allow-origin"], undefined);
  }
  const preflight = await http(`${queen.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "http://evil.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization" } });
  t.true(preflight.status < 500, String(preflight.status));
  t.is(preflight.headers["access-control-allow-origin"], undefined);
  t.is(preflight.headers["access-control-allow-headers"], undefined);
});
