import test from "ava";
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import type { HiveListEntry, HiveStatus } from "../../daemons/queen/hive-registry.js";
import type { Teardown } from "../_helpers/cleanup.js";
import type { Daemon } from "../_helpers/daemon.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { FakeHive } from "./fake-hive.js";
import { getJson, payload, postJson, runJob, startQueen } from "./helpers.js";

const GiB = 1024 ** 3;

async function hiveState(queen: Daemon, hiveId: string): Promise<HiveStatus | undefined> {
  const r = await runJob(queen.url, { operation: "status" });
  return payload<{ hives: HiveStatus[] }>(r, "status").hives.find((h) => h.hive_id === hiveId);
}

async function fakeHive(t: Teardown, queen: Daemon, hiveId: string, extra: Partial<ConstructorParameters<typeof FakeHive>[0]> = {}): Promise<FakeHive> {
  const hive = await new FakeHive({ queenUrl: queen.url, hiveId, intervalMs: 100, ...extra }).listen();
  t.teardown(() => hive.close());
  return hive;
}

test("a hive is online while it beats, offline after 3 missed beats, and online again at the next beat", async (t) => {
  const home = await tempHome(t);
  const queen = await startQueen(t, home);
  const hive = await fakeHive(t, queen, "fake1", {
    devices: [{ id: "cpu", kind: "cpu", name: "CPU", memory_total: 8 * GiB, memory_free: 4 * GiB }],
    models: [{ id: "rbee-tiny", size_bytes: 3_000_000 }],
  });
  hive.startBeats();
  const online = await waitFor("fake1 online", async () => {
    const s = await hiveState(queen, "fake1");
    return s?.state === "online" && hive.beats >= 4 ? s : undefined;
  }, 30_000);
  t.is(online.url, hive.url);
  t.is(online.devices.length, 1);
  t.deepEqual(online.models.map((m) => m.id), ["rbee-tiny"]);
  t.truthy(online.last_seen && !Number.isNaN(Date.parse(online.last_seen)));

  hive.stopBeats();
  await waitFor("fake1 offline", async () => (await hiveState(queen, "fake1"))?.state === "offline", 10_000);
  // Learned ~100 ms beats: offline after 3 missed ones, so well past 2 since the last beat sent (the interval is
  // learned from the spacing of beats, which jitters: not exactly 300 ms).
  const since = Date.now() - hive.lastBeatSentAt;
  t.true(since >= 250, `offline ${since} ms after the last beat`);
  const metrics = await (await fetch(`${queen.url}/metrics`)).text();
  t.regex(metrics, /rbee_queen_hives\{state="offline"[^}]*\} 2/);

  hive.startBeats();
  await waitFor("fake1 back online", async () => (await hiveState(queen, "fake1"))?.state === "online", 10_000);
  t.regex(await (await fetch(`${queen.url}/metrics`)).text(), /rbee_queen_hives\{state="online"[^}]*\} 1/);
});

test("heartbeat bodies are validated: 400 with the field named, 200 for a good one", async (t) => {
  const home = await tempHome(t);
  const queen = await startQueen(t, home);
  const beat = `${queen.url}/v1/hives/heartbeat`;
  const good = { hive_id: "h1", url: "http://127.0.0.1:1", version: "1", devices: [], workers: [], models: [] };
  t.is((await postJson(beat, good)).status, 200);
  const bad = async (body: unknown, field: RegExp, code = "INVALID_REQUEST"): Promise<void> => {
    const r = await postJson(beat, body);
    t.is(r.status, 400, JSON.stringify(body));
    t.like(r.body, { error: { code } });
    t.regex((r.body as { error: { message: string } }).error.message, field);
  };
  await bad("{not json", /JSON/, "INVALID_JSON");
  await bad([], /body/);
  await bad({ ...good, hive_id: "Bad Id" }, /hive_id/);
  await bad({ ...good, url: "ftp://x" }, /url/);
  await bad({ ...good, devices: [{ id: "cpu", kind: "cpu", name: "c", memory_total: "8", memory_free: 1 }] }, /devices\[0\]\.memory_total/);
  await bad({ ...good, workers: [{ worker_id: "w", model: "m" }] }, /workers\[0\]\.state/);
  await bad({ ...good, models: {} }, /models/);
});

test("hive operations are forwarded to the hive named by hive_id: one stream, one correlation id, path [queen, hive]", async (t) => {
  const home = await tempHome(t);
  const queen = await startQueen(t, home);
  const hive = await fakeHive(t, queen, "fake2", { workers: [{ worker_id: "w-1", model: "m", state: "ready" }] });
  hive.startBeats();
  await waitFor("fake2 online", async () => (await hiveState(queen, "fake2"))?.state === "online", 30_000);
  const r = await runJob(queen.url, { operation: "worker_list", hive_id: "fake2" }, { correlationId: "corr-forward-1" });
  t.is(r.end.status, "completed");
  t.is(r.correlationId, "corr-forward-1");
  const data = r.events.find((e) => e.event === "data");
  t.is(data?.data.path.length, 2);
  t.is(data?.data.path[0], r.jobId);
  t.deepEqual((data?.data as { payload: unknown }).payload, { workers: [{ worker_id: "w-1", model: "m", state: "ready" }] });
  t.true(r.events.every((e) => e.data.correlation_id === "corr-forward-1"));
  const hiveJob = hive.server.registry.list().find((j) => j.operation === "worker_list");
  t.is(hiveJob?.parent_job_id, r.jobId);
  t.is(hiveJob?.correlation_id, "corr-forward-1");
});

test("infer through a fake hive: placement is narrated, tokens nest, and DELETE reaches the hive job", async (t) => {
  const home = await tempHome(t);
  const queen = await startQueen(t, home);
  const hive = await fakeHive(t, queen, "fake3", {
    workers: [{ worker_id: "w-7", model: "rbee-tiny", state: "ready", parallel: 2, busy_slots: 0 }],
  });
  hive.startBeats();
  await waitFor("fake3 online", async () => (await hiveState(queen, "fake3"))?.state === "online", 30_000);
  const r = await runJob(queen.url, { operation: "infer", prompt: "hi", max_tokens: 3 });
  t.is(r.end.status, "completed");
  t.is(r.end.finish_reason, "length");
  t.deepEqual(r.end.usage, { prompt_tokens: 1, completion_tokens: 3 });
  const schedule = r.events.find((e) => e.event === "narration" && e.data.action === "schedule");
  t.regex(schedule?.event === "narration" ? schedule.data.human : "", /worker w-7 on hive fake3/);
  const tokens = r.events.filter((e) => e.event === "token");
  t.is(tokens.length, 3);
  t.true(tokens.every((e) => e.data.path.length === 2 && e.data.path[0] === r.jobId));
  t.truthy(r.end.timing);

  // Cancel: the queen's DELETE cascades to the hive job it created.
  const queenClient = await import("../../shared/job-client.js");
  const client = new queenClient.JobClient(queen.url);
  const created = await client.create({ operation: "infer", prompt: "forever", hive_id: "fake3" });
  const events = [];
  for await (const e of client.stream(created.job_id)) {
    events.push(e);
    if (e.event === "token") await client.cancel(created.job_id);
  }
  t.like(events.at(-1), { event: "end", data: { status: "cancelled", error: { code: "CANCELLED" } } });
  await waitFor("the hive job to be cancelled", () => hive.cancelledJobs.length === 1, 10_000);
  const hiveJob = hive.server.registry.list().find((j) => j.job_id === hive.cancelledJobs[0]);
  t.is(hiveJob?.parent_job_id, created.job_id);
  await waitFor("hive job ended cancelled", () => hive.server.registry.get(hive.cancelledJobs[0]!)?.status === "cancelled", 10_000);
});

test("HIVE_NOT_FOUND for an unknown hive and HIVE_UNREACHABLE within seconds for an offline or dead one", async (t) => {
  const home = await tempHome(t);
  await mkdir(path.join(home, "config"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), "Host far\n  HostName 10.255.255.1\n  HivePort 9000\n");
  const queen = await startQueen(t, home);

  for (const op of [
    { operation: "worker_list", hive_id: "nope" },
    { operation: "hive_status", hive_id: "nope" },
    { operation: "infer", prompt: "x", hive_id: "nope" },
    { operation: "hive_start", hive_id: "nope" },
  ]) {
    const r = await runJob(queen.url, op);
    t.like(r.end, { status: "failed", error: { code: "HIVE_NOT_FOUND" } }, JSON.stringify(op));
  }

  for (const op of [{ operation: "worker_list", hive_id: "far" }, { operation: "infer", prompt: "x", hive_id: "far" }]) {
    const began = Date.now();
    const r = await runJob(queen.url, op);
    t.like(r.end, { status: "failed", error: { code: "HIVE_UNREACHABLE" } });
    t.regex(r.end.error?.message ?? "", /offline/);
    t.true(Date.now() - began < 2000, `took ${Date.now() - began} ms`);
  }

  // A hive that dies between beats: the connection is refused at once, and it is offline from then on.
  const hive = await fakeHive(t, queen, "dying", { intervalMs: 2000 });
  await hive.beat();
  await hive.close();
  const began = Date.now();
  const r = await runJob(queen.url, { operation: "infer", prompt: "x", hive_id: "dying" });
  t.like(r.end, { status: "failed", error: { code: "HIVE_UNREACHABLE" } });
  t.true(Date.now() - began < 4000, `took ${Date.now() - began} ms`);
  t.is((await hiveState(queen, "dying"))?.state, "offline");
});

test("hive_list shows configured and registered hives; hive_status shows one; status covers all", async (t) => {
  const home = await tempHome(t);
  await mkdir(path.join(home, "config"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), "Host localhost\n  HivePort 0\nHost gpu-box\n  HostName 10.0.0.7\n  HivePort 9100\n");
  const queen = await startQueen(t, home);
  const hive = await fakeHive(t, queen, "walk-in", { models: [{ id: "m1", size_bytes: 10 }] });
  await hive.beat();

  const list = payload<{ hives: HiveListEntry[] }>(await runJob(queen.url, { operation: "hive_list" }), "hive_list").hives;
  t.deepEqual(list.map((h) => [h.hive_id, h.configured, h.state]), [["localhost", true, "offline"], ["gpu-box", true, "offline"], ["walk-in", false, "online"]]);
  t.like(list[1], { host: "10.0.0.7", hive_port: 9100, url: "http://10.0.0.7:9100", last_seen: null });

  const one = payload<HiveStatus>(await runJob(queen.url, { operation: "hive_status", hive_id: "walk-in" }), "hive_status");
  t.like(one, { hive_id: "walk-in", state: "online", url: hive.url });
  t.deepEqual(one.models, [{ id: "m1", size_bytes: 10 }]);
  t.deepEqual(Object.keys(one).sort(), ["devices", "hive_id", "last_seen", "models", "state", "url", "workers"]);

  const all = payload<{ hives: HiveStatus[] }>(await runJob(queen.url, { operation: "status" }), "status").hives;
  t.deepEqual(all.map((h) => h.hive_id), ["localhost", "gpu-box", "walk-in"]);
  t.like(await getJson(`${queen.url}/v1/info`), { service: "queen-rbee" });
});

test("a remote hive_start needs --advertise-url or a non-loopback --host", async (t) => {
  const home = await tempHome(t);
  await mkdir(path.join(home, "config"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), "Host far\n  HostName 10.255.255.1\n");
  const queen = await startQueen(t, home);
  const r = await runJob(queen.url, { operation: "hive_start", hive_id: "far" });
  t.like(r.end, { status: "failed", error: { code: "INVALID_REQUEST" } });
  t.regex(r.end.error?.message ?? "", /--advertise-url/);
});

test("with a token, heartbeats need it and the queen sends it to hives", async (t) => {
  const home = await tempHome(t);
  const token = "queen-token-123";
  const queen = await startQueen(t, home, [], { RBEE_TOKEN: token });
  const hive = await fakeHive(t, queen, "locked", { token });
  const denied = await postJson(`${queen.url}/v1/hives/heartbeat`, hive.body());
  t.is(denied.status, 401);
  t.is(await hive.beat(), 200);
  const r = await runJob(queen.url, { operation: "model_list", hive_id: "locked" }, { token });
  t.is(r.end.status, "completed", JSON.stringify(r.end));
  // The OpenAI routes answer a missing token in OpenAI's error shape, the job API in rbee's.
  const openai = await postJson(`${queen.url}/v1/chat/completions`, { model: "rbee-tiny", messages: [] });
  t.is(openai.status, 401);
  t.like(openai.body, { error: { type: "authentication_error", code: "UNAUTHORIZED" } });
  t.like((await postJson(`${queen.url}/v1/jobs`, { operation: "status" })).body, { error: { code: "UNAUTHORIZED" } });
});
