import test from "ava";
import { alive } from "../_helpers/process.js";
import { waitFor } from "../_helpers/wait.js";
import { listWorkers, narrations, runJob, startHive } from "./hive-helpers.js";

test("infer through the hive spawns a worker, streams tokens with path [hive job, worker job], ends with usage; the next infer reuses it", async (t) => {
  const hive = await startHive(t, ["--hive-id", "hi1"]);
  const first = await runJob(hive.client, { operation: "infer", prompt: "Once upon a time", max_tokens: 8, ignore_eos: true, seed: 1 });
  t.is(first.end.status, "completed", JSON.stringify(first.end.error));
  t.is(first.end.finish_reason, "length");
  t.is(first.end.usage?.completion_tokens, 8);
  t.true((first.end.usage?.prompt_tokens ?? 0) > 0);
  t.truthy(first.end.timing);

  const tokens = first.events.flatMap((e) => (e.event === "token" ? [e.data] : []));
  t.is(tokens.length, 8);
  t.deepEqual(tokens.map((x) => x.index), [0, 1, 2, 3, 4, 5, 6, 7]);
  for (const tok of tokens) {
    t.is(tok.path.length, 2);
    t.is(tok.path[0], first.jobId);
    t.is(tok.path[1], tok.job_id, "the worker's own job id is the last in the path");
  }
  // the spawn was told, and its own narration nests under the infer job
  t.true(narrations(first, "worker_spawn").some((n) => n.job_id === first.jobId && /no worker has rbee-tiny/.test(n.human)));
  t.true(first.events.some((e) => e.event === "data" && e.data.action === "worker_spawn" && e.data.path.length === 2 && e.data.path[0] === first.jobId));
  t.true(narrations(first, "worker_select").some((n) => n.job_id === first.jobId && /spawned for it/.test(n.human)));

  const workers = await listWorkers(hive.client);
  t.is(workers.length, 1);
  const second = await runJob(hive.client, { operation: "infer", prompt: "Hello", max_tokens: 3, ignore_eos: true });
  t.is(second.end.status, "completed");
  const select = narrations(second, "worker_select").find((n) => n.job_id === second.jobId);
  t.truthy(select);
  t.true(select!.human.includes(workers[0]!.worker_id) && /free slot/.test(select!.human), select!.human);
  t.false(second.events.some((e) => e.event === "narration" && e.data.action === "worker_spawn"), "no second spawn");

  const embed = await runJob(hive.client, { operation: "embed", input: ["one", "two"] });
  t.is(embed.end.status, "completed", JSON.stringify(embed.end.error));
  const vectors = embed.events.find((e) => e.event === "data" && e.data.action === "embed");
  t.is(vectors?.data.path.length, 2);
  t.is((vectors?.data as { payload: { embeddings: number[][] } }).payload.embeddings.length, 2);
});

test("a worker killed with SIGKILL mid-stream fails its job WORKER_CRASHED quickly, leaves the list, and the next infer spawns a new one", async (t) => {
  const hive = await startHive(t, ["--hive-id", "hi2"]);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(spawn.end.status, "completed");
  const [victim] = await listWorkers(hive.client);
  t.truthy(victim);

  let killedAt = 0;
  const run = await runJob(hive.client, { operation: "infer", prompt: "Tell me a long story", max_tokens: 4000, ignore_eos: true }, (e) => {
    if (e.event === "token" && killedAt === 0) {
      killedAt = performance.now();
      process.kill(victim!.pid, "SIGKILL");
    }
  });
  const noticedMs = performance.now() - killedAt;
  t.true(killedAt > 0, "tokens arrived before the kill");
  t.is(run.end.status, "failed");
  t.is(run.end.error?.code, "WORKER_CRASHED");
  t.true(narrations(run, "worker_crashed").some((n) => n.level === "error" && n.human.includes(victim!.worker_id)));
  t.log(`WORKER_CRASHED ${noticedMs.toFixed(0)} ms after SIGKILL`);
  t.true(noticedMs < 15_000, `noticed after ${noticedMs} ms`);

  t.deepEqual(await listWorkers(hive.client), [], "the dead worker left the list");
  const next = await runJob(hive.client, { operation: "infer", prompt: "again", max_tokens: 2, ignore_eos: true });
  t.is(next.end.status, "completed");
  const [fresh] = await listWorkers(hive.client);
  t.truthy(fresh);
  t.not(fresh!.worker_id, victim!.worker_id);
  t.true(narrations(next, "worker_spawn").length > 0);
});

test("keep_alive 1: the worker is stopped a moment after its job, and its process is gone", async (t) => {
  const hive = await startHive(t);
  const run = await runJob(hive.client, { operation: "infer", prompt: "hi", max_tokens: 2, ignore_eos: true, keep_alive: 1 });
  t.is(run.end.status, "completed");
  const workers = await listWorkers(hive.client);
  t.is(workers.length, 1, "still loaded right after the job");
  t.is(workers[0]!.keep_alive, 1, "the job's keep_alive replaced the default");
  const pid = workers[0]!.pid;
  const started = performance.now();
  await waitFor("the idle worker to be stopped", async () => (await listWorkers(hive.client)).length === 0, 15_000, 200);
  t.log(`idle worker stopped ${(performance.now() - started).toFixed(0)} ms after its job ended`);
  await waitFor("the worker process to exit", () => !alive(pid));
  t.false(alive(pid));
});

test("a worker that stops answering (SIGSTOP) is noticed within about 2 s: WORKER_CRASHED, killed, off the list", async (t) => {
  const hive = await startHive(t, ["--hive-id", "hi3"]);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny" });
  t.is(spawn.end.status, "completed");
  const [victim] = await listWorkers(hive.client);
  let stoppedAt = 0;
  const run = await runJob(hive.client, { operation: "infer", prompt: "Tell me a long story", max_tokens: 4000, ignore_eos: true }, (e) => {
    if (e.event === "token" && stoppedAt === 0) {
      stoppedAt = performance.now();
      process.kill(victim!.pid, "SIGSTOP");
    }
  });
  const noticedMs = performance.now() - stoppedAt;
  t.is(run.end.error?.code, "WORKER_CRASHED");
  t.regex(run.end.error?.message ?? "", /stopped answering/);
  t.log(`WORKER_CRASHED ${noticedMs.toFixed(0)} ms after SIGSTOP`);
  t.true(noticedMs < 15_000, `noticed after ${noticedMs} ms`);
  t.deepEqual(await listWorkers(hive.client), []);
  await waitFor("the hung worker to be killed", () => !alive(victim!.pid));
  t.false(alive(victim!.pid));
});
