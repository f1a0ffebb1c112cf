import test from "ava";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { binaryCommand } from "../../shared/binaries.js";
import { VERSION } from "../../shared/version.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { alive, pidsMentioning } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { listWorkers, runJob, startHive } from "./hive-helpers.js";

interface Beat {
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
  at: number;
}

/** A stand-in queen: records every heartbeat. */
async function fakeQueen(t: Teardown, port = 0): Promise<{ url: string; beats: Beat[]; server: Server }> {
  const beats: Beat[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/hives/heartbeat") beats.push({ headers: req.headers, body: JSON.parse(text) as Record<string, unknown>, at: Date.now() });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.closeIdleConnections();
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, beats, server };
}

test("heartbeats reach the queen at once and then every interval, with the contract's body and the token", async (t) => {
  const queen = await fakeQueen(t);
  const hive = await startHive(t, ["--hive-id", "beat1", "--queen-url", queen.url, "--heartbeat-interval", "0.5"], { RBEE_TOKEN: "s3cret-token" });
  await waitFor("three heartbeats", () => queen.beats.length >= 3);
  const beat = queen.beats[0]!;
  t.deepEqual(Object.keys(beat.body).sort(), ["devices", "hive_id", "models", "url", "version", "workers"]);
  t.like(beat.body, { hive_id: "beat1", url: hive.url, version: VERSION, workers: [] });
  t.true(Array.isArray(beat.body["models"]));
  const devices = beat.body["devices"] as { id: string; kind: string; name: string; memory_total: number; memory_free: number }[];
  t.like(devices[0], { id: "cpu", kind: "cpu" });
  t.true(devices[0]!.memory_total > 0 && devices[0]!.memory_free > 0);
  t.is(beat.headers["authorization"], "Bearer s3cret-token");
  t.is(beat.headers["content-type"], "application/json");
  const gaps = queen.beats.slice(1).map((b, i) => b.at - queen.beats[i]!.at);
  t.true(gaps.every((g) => g >= 300), `beats are spaced by the interval: ${gaps.join(", ")} ms`);

  // /v1/info has the same shape and needs the token like every route but /health
  t.is((await request(`${hive.url}/v1/info`)).statusCode, 401);
  const info = (await (await request(`${hive.url}/v1/info`, { headers: { authorization: "Bearer s3cret-token" } })).body.json()) as Record<string, unknown>;
  t.deepEqual(Object.keys(info).sort(), ["devices", "hive_id", "models", "url", "version", "workers"]);
  t.is((await request(`${hive.url}/health`)).statusCode, 200);
});

test("a queen that goes away is retried quietly: one log line when it goes, one when it is back", async (t) => {
  const queen = await fakeQueen(t);
  const port = Number(new URL(queen.url).port);
  const hive = await startHive(t, ["--queen-url", queen.url, "--heartbeat-interval", "0.3"]);
  await waitFor("a first heartbeat", () => queen.beats.length >= 1);
  queen.server.closeAllConnections();
  await new Promise<void>((r) => queen.server.close(() => r()));
  const logLines = async () => (await readFile(hive.logFile, "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as { action: string });
  await waitFor("the queen_away log line", async () => (await logLines()).some((l) => l.action === "queen_away"));
  // several more failed beats pass (0.3 s apart) without more lines
  const failedSince = Date.now();
  await waitFor("a few failed beats", () => Date.now() - failedSince > 1200);
  const back = await fakeQueen(t, port);
  await waitFor("heartbeats to the queen that came back", () => back.beats.length >= 1);
  await waitFor("the queen_back log line", async () => (await logLines()).some((l) => l.action === "queen_back"));
  const lines = await logLines();
  t.is(lines.filter((l) => l.action === "queen_away").length, 1);
  t.is(lines.filter((l) => l.action === "queen_back").length, 1);
});

test("SIGTERM stops every worker: no orphan processes; POST /v1/shutdown does the same", async (t) => {
  const home = await tempHome(t);
  const hive = await startHive(t, [], {}, home);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(spawn.end.status, "completed", JSON.stringify(spawn.end.error));
  const [worker] = await listWorkers(hive.client);
  const before = await pidsMentioning(home);
  t.true(before.includes(hive.child.pid!) && before.includes(worker!.pid), `hive and worker run: ${before.join(" ")}`);
  hive.child.kill("SIGTERM");
  t.is(await hive.exited, 0);
  // The hive waits for its workers before exiting, so nothing is left the moment it is gone.
  t.deepEqual(await pidsMentioning(home), []);
  t.false(alive(worker!.pid));

  const again = await startHive(t, [], {}, home);
  const spawn2 = await runJob(again.client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(spawn2.end.status, "completed");
  const res = await request(`${again.url}/v1/shutdown`, { method: "POST" });
  t.is(res.statusCode, 202);
  await res.body.dump();
  t.is(await again.exited, 0);
  t.deepEqual(await pidsMentioning(home), []);
});

// llm-worker-rbee exits when its standard input (a pipe the hive holds) closes.
test("a hive killed with SIGKILL leaves no worker behind (the worker sees its stdin close)", async (t) => {
  const home = await tempHome(t);
  const hive = await startHive(t, [], {}, home);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(spawn.end.status, "completed");
  const [worker] = await listWorkers(hive.client);
  hive.child.kill("SIGKILL");
  await hive.exited;
  await waitFor("the orphaned worker to exit", () => !alive(worker!.pid), 15_000);
  t.deepEqual(await pidsMentioning(home), []);
});

test("--help lists every flag the man page documents, and the other way round", async (t) => {
  const bin = binaryCommand("rbee-hive");
  const help = spawnSync(bin.command, [...bin.args, "--help"], { encoding: "utf8" });
  t.is(help.status, 0);
  const man = await readFile(new URL("../../man/rbee-hive.8", import.meta.url), "utf8");
  const helpFlags = new Set(help.stdout.match(/--[a-z][a-z-]+/g));
  const options = man.slice(man.indexOf(".SH OPTIONS"), man.indexOf(".SH", man.indexOf(".SH OPTIONS") + 1));
  const manFlags = new Set([...options.matchAll(/\\-\\-([a-z]+(?:\\-[a-z]+)*)/g)].map((m) => `--${m[1]!.replace(/\\-/g, "-")}`));
  t.true(helpFlags.size >= 12);
  t.deepEqual([...manFlags].sort(), [...helpFlags].sort());
  const bad = spawnSync(bin.command, [...bin.args, "--keep-alive", "-5"], { encoding: "utf8" });
  t.is(bad.status, 2);
  t.regex(bad.stderr, /--keep-alive/);
});
