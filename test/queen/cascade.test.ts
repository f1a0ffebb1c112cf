import test from "ava";
import { existsSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import * as path from "node:path";
import { JobClient } from "../../shared/job-client.js";
import type { JobEvent, JobSummary } from "../../shared/protocol.js";
import type { HiveStatus } from "../../daemons/queen/hive-registry.js";
import { dist, type Daemon } from "../_helpers/daemon.js";
import { alive } from "../_helpers/process.js";
import { makeHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { getJson, narrations, payload, runJob, startQueen } from "./helpers.js";

const built = existsSync(dist("hive")) && existsSync(dist("worker"));

async function localhost(queen: Daemon): Promise<HiveStatus | undefined> {
  const r = await runJob(queen.url, { operation: "status" });
  return payload<{ hives: HiveStatus[] }>(r, "status").hives.find((h) => h.hive_id === "localhost");
}

(built ? test : test.skip)("real queen -> hive -> worker: auto-start, path of 3, one correlation id, worker reuse, cancel, stop", async (t) => {
  const home = await makeHome(t, { prefix: "rbee-queen-" });
  const stateDir = path.join(home, "state");
  const queen = await startQueen(t, home, ["--log-file", path.join(stateDir, "queen-rbee.log")]);
  const seen = new Set<number>();
  t.teardown(async () => {
    // Whatever happens, leave no hive or worker behind: the hive stops its workers on SIGTERM.
    const pid = Number((await readFile(path.join(stateDir, "rbee-hive-localhost.pid"), "utf8").catch(() => "")).trim());
    if (pid > 0 && alive(pid)) {
      process.kill(pid, "SIGTERM");
      await waitFor("the hive to exit", () => !alive(pid), 10_000).catch(() => process.kill(pid, "SIGKILL"));
    }
    for (const w of seen) if (alive(w)) process.kill(w, "SIGKILL");
  });
  // The queen writes its pid file just after its `listening` line.
  const pidFile = await waitFor("the queen's pid file", () => readFile(path.join(stateDir, "queen-rbee.pid"), "utf8").catch(() => ""));
  t.is(pidFile.trim(), String(queen.child.pid));

  // 1. A fresh machine: no hive runs; the first infer starts localhost, which spawns a worker.
  const corr = "corr-cascade-test-1";
  const first = await runJob(queen.url, { operation: "infer", prompt: "hello there", max_tokens: 8, ignore_eos: true }, { correlationId: corr });
  t.is(first.end.status, "completed", `${JSON.stringify(first.end)} ${narrations(first).join(" | ")}`);
  t.true(narrations(first).some((n) => n.startsWith("hive_autostart")), narrations(first).join(" | "));
  t.true(narrations(first).some((n) => /^schedule: .*hive localhost/.test(n)));
  const tokens = first.events.filter((e) => e.event === "token");
  t.is(tokens.length, 8);
  for (const e of tokens) {
    t.is(e.data.path.length, 3);
    t.is(e.data.path[0], first.jobId);
  }
  t.true(first.events.every((e) => e.data.correlation_id === corr));
  t.deepEqual(first.end.usage?.completion_tokens, 8);
  t.is(first.end.finish_reason, "length");
  // The same correlation id in the logs of all three daemons.
  const logs = (await readdir(stateDir)).filter((f) => f.endsWith(".log"));
  for (const name of ["queen-rbee.log", "rbee-hive-localhost.log"]) t.true(logs.includes(name), logs.join(","));
  const workerLog = logs.find((f) => f.startsWith("llm-worker-rbee-"));
  t.truthy(workerLog, logs.join(","));
  for (const f of ["queen-rbee.log", "rbee-hive-localhost.log", workerLog!]) {
    t.true((await readFile(path.join(stateDir, f), "utf8")).includes(corr), `${f} has ${corr}`);
  }

  // 2. The worker shows in the next heartbeat; a second infer goes straight to it.
  const withWorker = await waitFor("a ready worker in status", async () => {
    const s = await localhost(queen);
    return s?.workers.some((w) => w.state === "ready") ? s : undefined;
  }, 30_000);
  const worker = withWorker.workers[0]!;
  seen.add(Number(worker.pid));
  const second = await runJob(queen.url, { operation: "infer", prompt: "again", max_tokens: 3 });
  t.is(second.end.status, "completed");
  t.true(narrations(second).some((n) => n.includes(`worker ${worker.worker_id} on hive localhost`)), narrations(second).join(" | "));
  t.false(narrations(second).some((n) => n.startsWith("hive_autostart")));

  // 3. DELETE on the queen job reaches the worker job.
  const client = new JobClient(queen.url);
  const created = await client.create({ operation: "infer", prompt: "go on forever", max_tokens: 100000, ignore_eos: true });
  const events: JobEvent[] = [];
  let workerJob: string | undefined;
  for await (const e of client.stream(created.job_id)) {
    events.push(e);
    if (e.event === "token" && workerJob === undefined) {
      workerJob = e.data.path[2];
      await client.cancel(created.job_id);
    }
  }
  t.like(events.at(-1), { event: "end", data: { status: "cancelled" } });
  const workerUrl = String(worker.url);
  await waitFor("the worker job to end cancelled", async () => {
    const jobs = (await getJson<{ jobs: JobSummary[] }>(`${workerUrl}/v1/jobs`)).jobs;
    return jobs.find((j) => j.job_id === workerJob)?.status === "cancelled";
  }, 15_000);

  // 4. hive_stop stops the hive and its worker; the next infer starts them again.
  const hivePid = Number((await readFile(path.join(stateDir, "rbee-hive-localhost.pid"), "utf8")).trim());
  const workerPid = Number(worker.pid);
  t.true(alive(hivePid) && alive(workerPid));
  const stop = await runJob(queen.url, { operation: "hive_stop", hive_id: "localhost" });
  t.is(stop.end.status, "completed");
  await waitFor("hive and worker to exit", () => !alive(hivePid) && !alive(workerPid), 15_000);
  t.is((await localhost(queen))?.state, "offline");
  const third = await runJob(queen.url, { operation: "infer", prompt: "back", max_tokens: 2 });
  t.is(third.end.status, "completed");
  t.true(narrations(third).some((n) => n.startsWith("hive_autostart")));

  // 5. Stopping the queen stops the hive it started and that hive's worker.
  const s = await waitFor("the new worker in status", async () => {
    const h = await localhost(queen);
    return h?.workers[0] ? h : undefined;
  }, 30_000);
  const hive2 = Number((await readFile(path.join(stateDir, "rbee-hive-localhost.pid"), "utf8")).trim());
  const worker2 = Number(s.workers[0]!.pid);
  seen.add(worker2);
  t.is(await queen.stop("SIGTERM"), 0);
  await waitFor("hive and worker to exit with the queen", () => !alive(hive2) && !alive(worker2), 15_000);
  t.false(existsSync(path.join(stateDir, "queen-rbee.pid")));
});
