import test from "ava";
import * as path from "node:path";
import { JobClient } from "../../shared/job-client.js";
import { resolvePaths } from "../../shared/paths.js";
import { createHive, type Hive } from "../../daemons/hive/app.js";
import { Devices } from "../../daemons/hive/devices.js";
import { estimateWorkerMemory } from "../../daemons/hive/memory.js";
import { alive } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { listWorkers, narrations, runJob } from "./hive-helpers.js";

const GiB = 1024 ** 3;

test("a worker that does not fit evicts idle workers least recently used first; with none idle it is INSUFFICIENT_MEMORY with the numbers", async (t) => {
  const home = await tempHome(t);
  const paths = resolvePaths({ RBEE_HOME: home });
  let budget = Number.POSITIVE_INFINITY;
  let hive: Hive | undefined;
  // RAM as the OS would report it: the budget less what loaded workers hold (a loading one is not counted yet).
  const devices = new Devices(
    async () => null,
    async () => {
      const held = (hive?.supervisor.list() ?? []).filter((w) => w.phase !== "starting").reduce((s, w) => s + w.spec.estimate, 0);
      return { total: 16 * GiB, free: Math.max(0, Math.min(16 * GiB, budget) - held) };
    },
  );
  hive = createHive({
    hiveId: "mem", paths, devices, heartbeatIntervalMs: 2000, keepAlive: 300, workerPortStart: 9001, maxQueue: 64, logFile: path.join(home, "hive.log"),
  });
  const url = await hive.server.listen(0, "127.0.0.1");
  hive.afterListen(url);
  t.teardown(async () => {
    await hive?.dispose();
    await hive?.server.close();
  });
  const client = new JobClient(url);
  const need = (await estimateWorkerMemory(await hive.catalog.resolve("rbee-tiny"), undefined, 1)).total;
  budget = Math.floor(need * 1.5);

  const a = await runJob(client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(a.end.status, "completed", JSON.stringify(a.end.error));
  const [first] = await listWorkers(client);
  const b = await runJob(client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(b.end.status, "completed", JSON.stringify(b.end.error));
  const evict = narrations(b, "worker_evict");
  t.is(evict.length, 1);
  t.is(evict[0]!.target, first!.worker_id);
  t.regex(evict[0]!.human, /idle worker .* to free about \d+ MiB/);
  await waitFor("the evicted worker to exit", () => !alive(first!.pid));
  const [second] = await listWorkers(client);
  t.not(second!.worker_id, first!.worker_id);

  // Keep the second worker busy: it is no longer idle, so nothing may be evicted for a third.
  const { job_id } = await client.create({ operation: "infer", prompt: "go on", max_tokens: 4000, ignore_eos: true, worker_id: second!.worker_id });
  t.teardown(() => client.cancel(job_id).catch(() => undefined));
  const stream = client.stream(job_id);
  for await (const e of stream) if (e.event === "token") break;
  t.like((await listWorkers(client))[0], { worker_id: second!.worker_id, state: "busy", busy_slots: 1 }, "its one slot is taken");
  const c = await runJob(client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(c.end.status, "failed");
  t.is(c.end.error?.code, "INSUFFICIENT_MEMORY");
  t.regex(c.end.error?.message ?? "", /needs about \d+ MiB on cpu .* but \d+ MiB is free/);
  t.is(narrations(c, "worker_evict").length, 0);
  t.is((await listWorkers(client)).length, 1, "the busy worker was left alone");
  await client.cancel(job_id);
});
