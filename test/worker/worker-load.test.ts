import test from "ava";
import { spawnSync } from "node:child_process";
import { binaryCommand } from "../../shared/binaries.js";
import type { JobEvent } from "../../shared/protocol.js";
import { tinyModel } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { collect, end, info, ready, run, startWorker } from "./helpers.js";

test("the worker listens first, loads as a job with layer progress, and /v1/info tells it all", async (t) => {
  const model = await tinyModel(t);
  const w = await startWorker(t, [
    "--model", model, "--model-id", "rbee-tiny", "--worker-id", "w-test-1", "--device", "cpu", "--gpu-layers", "max",
    "--context-size", "128", "--parallel", "2", "--correlation-id", "corr-worker-test", "--parent-job-id", "job-parent123",
  ]);
  const first = await info(w);
  t.regex(first.load_job_id, /^job-[A-Za-z0-9_-]{6,64}$/);
  t.true(["loading", "ready"].includes(first.state));

  const load = await collect(w, first.load_job_id);
  t.is(end(load).status, "completed");
  t.is(end(load).correlation_id, "corr-worker-test");
  const progress = load.flatMap((e) => (e.event === "progress" ? [e.data] : []));
  t.true(progress.length > 1);
  t.true(progress.every((p) => p.unit === "layers" && p.total === 5 && p.action === "load_model"));
  t.is(progress.at(-1)?.done, 5);
  const human = load.flatMap((e) => (e.event === "narration" ? [e.data.human] : [])).join("\n");
  t.regex(human, /no GPU probing/);
  t.regex(human, /gpu-layers max asks for GPU offload but there is no GPU/);
  t.regex(human, /Loaded on the CPU: 0 of 5 layers on the GPU, .* RAM; 2 x \d+ tokens of context, 1 CPU thread/);
  const job = (await w.client.list()).find((j) => j.job_id === first.load_job_id);
  t.like(job, { operation: "load", status: "completed", parent_job_id: "job-parent123" });

  const i = await ready(w);
  t.like(i, {
    worker_id: "w-test-1", model: "rbee-tiny", model_path: model, state: "ready", gpu: false, gpu_layers: 0, total_layers: 5,
    parallel: 2, threads: 1, busy_slots: 0, queued: 0, load_job_id: first.load_job_id,
  });
  t.true((i["context_size"] as number) >= 128);
  t.true((i["memory"] as { model_bytes: number }).model_bytes > 1_000_000);
  t.false(Number.isNaN(Date.parse(i["last_used"] as string)));
  const health = (await (await fetch(`${w.url}/health`)).json()) as { service: string };
  t.is(health.service, "llm-worker-rbee");

  // POST /v1/shutdown stops the worker cleanly
  const res = await fetch(`${w.url}/v1/shutdown`, { method: "POST" });
  t.is(res.status, 202);
  t.is(await w.exited, 0);
});

test("--threads sets the thread count; SIGTERM cancels running jobs and exits 0", async (t) => {
  const model = await tinyModel(t);
  const w = await startWorker(t, ["--model", model, "--device", "cpu", "--threads", "2"]);
  t.like(await ready(w), { threads: 2 });
  const events = await run(w, { operation: "infer", prompt: "the bee", temperature: 0, max_tokens: 3 });
  t.is(end(events).status, "completed");
  const long = await w.client.create({ operation: "infer", prompt: "the bee", max_tokens: 1_000_000, ignore_eos: true });
  const seen: JobEvent[] = [];
  const reading = (async () => {
    for await (const e of w.client.stream(long.job_id, { reconnects: 0 })) seen.push(e);
  })().catch(() => {});
  await waitFor("a token", () => seen.some((e) => e.event === "token"), 30_000);
  w.child.kill("SIGTERM");
  t.is(await w.exited, 0);
  await reading;
  t.is(end(seen).status, "cancelled");
});

test("a missing model fails the load job with MODEL_NOT_FOUND, queued jobs with it, and the worker exits 1", async (t) => {
  const w = await startWorker(t, ["--model", "/nonexistent/rbee/model.gguf", "--device", "cpu"]);
  const { load_job_id } = await info(w);
  // a job that waits for the model fails with the load's code; it is read before the load's end lets the worker go
  const queued = await w.client.create({ operation: "infer", prompt: "the bee" });
  const queuedEvents = collect(w, queued.job_id);
  const load = await collect(w, load_job_id);
  t.is(end(load).status, "failed");
  t.is(end(load).error?.code, "MODEL_NOT_FOUND");
  t.regex(end(load).error?.message ?? "", /\/nonexistent\/rbee\/model\.gguf/);
  const q = await queuedEvents;
  t.is(end(q).status, "failed");
  t.is(end(q).error?.code, "MODEL_NOT_FOUND");
  t.is(await w.exited, 1);
});

test("a context that does not fit ends the load INSUFFICIENT_MEMORY with the numbers", async (t) => {
  const model = await tinyModel(t);
  const w = await startWorker(t, ["--model", model, "--device", "cpu", "--context-size", "4000000", "--parallel", "8"]);
  const load = await collect(w, (await info(w)).load_job_id);
  t.is(end(load).status, "failed");
  t.is(end(load).error?.code, "INSUFFICIENT_MEMORY");
  t.regex(end(load).error?.message ?? "", /8 x 4000000 tokens of context need about [\d.]+ [GT]iB of RAM .* is free/);
  t.is(await w.exited, 1);
});

test("usage errors exit 2 with one line on stderr", (t) => {
  const bin = binaryCommand("llm-worker-rbee");
  const noModel = spawnSync(bin.command, [...bin.args, "--port", "0"], { encoding: "utf8" });
  t.is(noModel.status, 2);
  t.regex(noModel.stderr, /--model PATH is required/);
  const badDevice = spawnSync(bin.command, [...bin.args, "--model", "/x.gguf", "--device", "tpu"], { encoding: "utf8" });
  t.is(badDevice.status, 2);
  t.regex(badDevice.stderr, /--device must be auto, cpu or gpu:N/);
  const help = spawnSync(bin.command, [...bin.args, "--help"], { encoding: "utf8" });
  t.is(help.status, 0);
  t.regex(help.stdout, /--gpu-layers auto\|max\|N/);
});
