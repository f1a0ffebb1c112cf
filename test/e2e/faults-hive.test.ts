/**
 * Faults of whole daemons, done for real: a hive SIGKILLed (offline within its missed beats, pinned
 * jobs fail fast, it re-registers after a restart), and a queen SIGKILLed and started again on the
 * same port (its hives re-register and status is right again within two beats).
 */
import test from "ava";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { JobClient } from "../../shared/job-client.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { alive, freePort, holdPort } from "../_helpers/process.js";
import { makeHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { follow, hiveStatus, narrations, payload, runJob, startHive, startQueen } from "./e2e-helpers.js";

const run = daemonsBuilt ? test : test.skip;
const BEAT_S = 0.5;

/** Milliseconds until `predicate` holds, polled every 25 ms. */
async function timeUntil(what: string, predicate: () => Promise<boolean>, ms = 30_000): Promise<number> {
  const from = performance.now();
  await waitFor(what, predicate, ms, 25);
  return Math.round(performance.now() - from);
}

run("a hive SIGKILLed: its jobs fail HIVE_UNREACHABLE at once, offline within its missed beats, back online after a restart", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home);
  // The hive's first worker port is taken: the worker must get the next free one.
  const taken = await holdPort(t);
  const hiveArgs = ["--heartbeat-interval", String(BEAT_S), "--worker-port-start", String(taken)];
  const hive = await startHive(t, home, "h1", queen.url, hiveArgs);
  await waitFor("h1 online", async () => (await hiveStatus(queen.url, "h1"))?.state === "online", 30_000);

  const spawn = await runJob(queen.url, { operation: "worker_spawn", hive_id: "h1", model: "rbee-tiny" });
  t.is(spawn.end.status, "completed", JSON.stringify(spawn.end));
  const worker = payload<{ worker_id: string; url: string; pid: number }>(spawn, "worker_spawn");
  const port = Number(new URL(worker.url).port);
  t.true(port > taken, `worker port ${port} skips the taken ${taken}`);
  t.true(narrations(spawn).some((n) => n.startsWith("worker_started")), narrations(spawn).join(" | "));
  // Let the queen learn the beat interval from a few gaps, as it would in a running cluster.
  await waitFor("a few beats", async () => (await hiveStatus(queen.url, "h1"))?.workers.length === 1, 30_000);

  // Killed mid-stream of a pinned infer: the queen job fails HIVE_UNREACHABLE, and the hive is offline at once.
  const created = await new JobClient(queen.url).create({ operation: "infer", hive_id: "h1", prompt: "long story", max_tokens: 100_000, ignore_eos: true });
  let killedAt = 0;
  const events = await follow(queen.url, created.job_id, (e) => {
    if (e.event !== "token" || killedAt > 0) return;
    hive.child.kill("SIGKILL");
    killedAt = performance.now();
  });
  const inflightMs = Math.round(performance.now() - killedAt);
  const last = events.at(-1);
  t.log(`in-flight infer ended ${inflightMs} ms after the hive's SIGKILL: ${last?.event === "end" ? JSON.stringify(last.data.error) : ""}`);
  t.like(events.at(-1), { event: "end", data: { status: "failed", error: { code: "HIVE_UNREACHABLE" } } });
  t.true(inflightMs < 5_000, `${inflightMs} ms`);
  t.like(await hiveStatus(queen.url, "h1"), { state: "offline", workers: [] }, "a hive gone mid-job is offline at once, with no workers");

  const from = performance.now();
  const pinned = await runJob(queen.url, { operation: "infer", hive_id: "h1", prompt: "anyone there", max_tokens: 2 });
  const pinnedMs = Math.round(performance.now() - from);
  t.log(`pinned infer on the dead hive ended in ${pinnedMs} ms: ${pinned.end.error?.message}`);
  t.like(pinned.end, { status: "failed", error: { code: "HIVE_UNREACHABLE" } });
  t.regex(pinned.end.error?.message ?? "", /h1/);
  t.true(pinnedMs < 5_000, `${pinnedMs} ms`);
  const op = await runJob(queen.url, { operation: "model_list", hive_id: "h1" });
  t.like(op.end, { status: "failed", error: { code: "HIVE_UNREACHABLE" } });

  const orphaned = alive(worker.pid);
  t.log(`orphaned worker ${worker.pid} before the hive restarts: ${orphaned ? "still running" : "exited (its stdin closed)"}`);
  const again = await startHive(t, home, "h1", queen.url, hiveArgs);
  const backMs = await timeUntil("h1 online again", async () => (await hiveStatus(queen.url, "h1"))?.state === "online");
  t.log(`restarted hive online at the queen ${backMs} ms after it listened`);
  t.is((await hiveStatus(queen.url, "h1"))?.url, again.url);
  const after = await runJob(queen.url, { operation: "infer", hive_id: "h1", prompt: "welcome back", max_tokens: 3, ignore_eos: true });
  t.is(after.end.status, "completed", JSON.stringify(after.end));
  // The dead hive's worker holds its model for nobody: it is gone by now (its stdin closed, or the new hive stopped it).
  await waitFor(`orphan worker ${worker.pid} to exit`, () => !alive(worker.pid), 20_000).catch(() => undefined);
  t.false(alive(worker.pid), `worker ${worker.pid} outlived its SIGKILLed hive`);

  // Killed while idle: only the missing heartbeats tell, within 3 beats (plus half a beat of slack).
  await waitFor("a few beats", async () => (await hiveStatus(queen.url, "h1"))?.workers.length === 1, 30_000);
  again.child.kill("SIGKILL");
  const offlineMs = await timeUntil("h1 offline", async () => (await hiveStatus(queen.url, "h1"))?.state === "offline");
  t.log(`idle hive marked offline ${offlineMs} ms after SIGKILL (beat ${BEAT_S * 1000} ms, timeout 3 beats)`);
  t.true(offlineMs < 15_000, `${offlineMs} ms`);
  const late = await runJob(queen.url, { operation: "infer", hive_id: "h1", prompt: "gone", max_tokens: 2 });
  t.like(late.end, { status: "failed", error: { code: "HIVE_UNREACHABLE" } });
});

run("the queen SIGKILLed and restarted on the same port: hives re-register, status is right within two beats, the new queen owns localhost", async (t) => {
  const home = await makeHome(t);
  const port = await freePort();
  const first = await startQueen(t, home, [], { port });
  const started = await runJob(first.url, { operation: "hive_start", hive_id: "localhost" });
  t.is(started.end.status, "completed", JSON.stringify(started.end));
  const stateDir = path.join(home, "state");
  const localPid = Number((await readFile(path.join(stateDir, "rbee-hive-localhost.pid"), "utf8")).trim());
  await startHive(t, home, "h2", first.url, ["--heartbeat-interval", String(BEAT_S)]);
  await waitFor("h2 online", async () => (await hiveStatus(first.url, "h2"))?.state === "online", 30_000);

  first.child.kill("SIGKILL");
  await first.exited;
  const second = await startQueen(t, home, [], { port });
  t.is(second.url, first.url);
  const h2Ms = await timeUntil("h2 online at the new queen", async () => (await hiveStatus(second.url, "h2"))?.state === "online");
  // localhost beats every 2 s (the default), h2 every 0.5 s.
  const localMs = await timeUntil("localhost online at the new queen", async () => (await hiveStatus(second.url, "localhost"))?.state === "online");
  t.log(`after the queen restart: h2 (beat ${BEAT_S * 1000} ms) back in ${h2Ms} ms, localhost (beat 2000 ms) in ${h2Ms + localMs} ms`);
  t.true(h2Ms < 15_000 && localMs < 15_000);
  const status = payload<{ hives: { hive_id: string; state: string }[] }>(await runJob(second.url, { operation: "status" }), "status");
  t.like(Object.fromEntries(status.hives.map((h) => [h.hive_id, h.state])), { localhost: "online", h2: "online" });

  // The hive the dead queen started works for the new one, and stopping the new queen stops it.
  const infer = await runJob(second.url, { operation: "infer", prompt: "new queen", max_tokens: 2 });
  t.is(infer.end.status, "completed", JSON.stringify(infer.end));
  t.false(narrations(infer).some((n) => n.startsWith("hive_autostart")), narrations(infer).join(" | "));
  const workerPid = (await hiveStatus(second.url, "localhost"))?.workers[0]?.pid;
  t.is(await second.stop("SIGTERM"), 0);
  await waitFor("the adopted localhost hive to stop with the queen", () => !alive(localPid), 20_000).catch(() => undefined);
  t.false(alive(localPid), "the localhost hive outlived the queen that took it over");
  if (workerPid) await waitFor("its worker to stop", () => !alive(workerPid), 20_000).catch(() => undefined);
  t.false(workerPid !== undefined && alive(workerPid), "its worker outlived the queen");
});
