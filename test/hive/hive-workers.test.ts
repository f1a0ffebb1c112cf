import test from "ava";
import { mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { request } from "undici";
import { gguf, writeGguf } from "../../shared/gguf/writer.js";
import { ensureRbeeTiny } from "../../shared/rbee-tiny.js";
import { alive, pidsMentioning } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { dataOf, listWorkers, narrations, runJob, startHive } from "./hive-helpers.js";

interface SpawnPayload {
  worker_id: string;
  url: string;
  pid: number;
  model: string;
  device: string;
  gpu_layers: number;
  total_layers: number;
}

test("worker_spawn starts a real worker on rbee-tiny; worker_list shows it; model_delete is refused; worker_stop stops it", async (t) => {
  const hive = await startHive(t, ["--hive-id", "hw1"]);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny", device: "auto", gpu_layers: "max" });
  t.is(spawn.end.status, "completed", JSON.stringify(spawn.end.error));
  const payload = dataOf(spawn, "worker_spawn") as SpawnPayload;
  t.deepEqual(Object.keys(payload).sort(), ["device", "gpu_layers", "model", "pid", "total_layers", "url", "worker_id"]);
  t.regex(payload.worker_id, /^hw1-w[A-Za-z0-9]+$/);
  t.regex(payload.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.true(payload.pid > 0 && alive(payload.pid));
  t.is(payload.model, "rbee-tiny");
  t.is(payload.device, "cpu", "this machine has no GPU, so auto is the CPU");
  t.is(payload.gpu_layers, 0);
  t.true(payload.total_layers >= 4, "rbee-tiny has 4 blocks (llama.cpp may count the output layer too)");

  // gpu_layers "max" on a machine with no GPU: 0 with a warning narration
  t.true(narrations(spawn, "gpu_layers").some((n) => n.level === "warn" && /no GPU/.test(n.human)));
  // the worker's load job nests under the spawn job: its events have the path grown by one
  const nested = spawn.events.filter((e) => e.event !== "end" && e.data.path.length === 2);
  t.true(nested.length > 0, "the worker's loading narration/progress is relayed");
  t.true(nested.every((e) => e.data.path[0] === spawn.jobId));

  const workers = await listWorkers(hive.client);
  t.is(workers.length, 1);
  const w = workers[0]!;
  t.deepEqual(Object.keys(w).sort(), [
    "busy_slots", "device", "gpu_layers", "hive_id", "keep_alive", "last_used", "model", "parallel", "pid", "state", "total_layers", "url", "worker_id",
  ]);
  t.like(w, { worker_id: payload.worker_id, hive_id: "hw1", url: payload.url, pid: payload.pid, model: "rbee-tiny", device: "cpu", state: "ready", parallel: 1, busy_slots: 0, keep_alive: 300 });
  t.false(Number.isNaN(Date.parse(w.last_used)));

  const del = await runJob(hive.client, { operation: "model_delete", model: "rbee-tiny" });
  t.is(del.end.status, "failed");
  t.is(del.end.error?.code, "INVALID_REQUEST");
  t.true(del.end.error?.message.includes(payload.worker_id), "the refusal names the worker using the model");

  const metrics = await (await request(`${hive.url}/metrics`)).body.text();
  t.regex(metrics, /rbee_hive_worker_spawns_total\{status="ok"[^}]*\} 1/);
  t.regex(metrics, /rbee_hive_workers\{state="ready"[^}]*\} 1/);

  const stop = await runJob(hive.client, { operation: "worker_stop", worker_id: payload.worker_id });
  t.is(stop.end.status, "completed");
  t.deepEqual(await listWorkers(hive.client), []);
  await waitFor("the worker process to exit", () => !alive(payload.pid));

  const again = await runJob(hive.client, { operation: "worker_stop", worker_id: payload.worker_id });
  t.is(again.end.error?.code, "WORKER_NOT_FOUND");
  const deleted = await runJob(hive.client, { operation: "model_delete", model: "rbee-tiny" });
  t.is(deleted.end.status, "completed", "once no worker uses it, the model can go");
});

test("a device the hive lacks ends INVALID_REQUEST naming device; a model it lacks ends MODEL_NOT_FOUND", async (t) => {
  const hive = await startHive(t);
  const gpu = await runJob(hive.client, { operation: "worker_spawn", model: "rbee-tiny", device: "gpu:3" });
  t.is(gpu.end.status, "failed");
  t.is(gpu.end.error?.code, "INVALID_REQUEST");
  t.regex(gpu.end.error?.message ?? "", /^device: .*gpu:3/);
  const missing = await runJob(hive.client, { operation: "worker_spawn", model: "no-such-model" });
  t.is(missing.end.error?.code, "MODEL_NOT_FOUND");
  const pinned = await runJob(hive.client, { operation: "infer", prompt: "hi", worker_id: "nobody-w1" });
  t.is(pinned.end.error?.code, "WORKER_NOT_FOUND");
  t.deepEqual(await listWorkers(hive.client), []);
});

test("a model the worker cannot load ends the spawn with the worker's own error, not WORKER_CRASHED, and leaves no process", async (t) => {
  const home = await tempHome(t);
  await mkdir(path.join(home, "models"), { recursive: true });
  // A well-formed GGUF of an architecture llama.cpp does not know: the worker starts, its load fails, it exits 1.
  await writeGguf(path.join(home, "models", "unloadable.gguf"), {
    metadata: { "general.architecture": gguf.string("rbee-nope") },
    tensors: [{ name: "x", shape: [4], type: "F32", data: new Float32Array(4) }],
  });
  const hive = await startHive(t, [], {}, home);
  const spawn = await runJob(hive.client, { operation: "worker_spawn", model: "unloadable" });
  t.is(spawn.end.status, "failed");
  t.not(spawn.end.error?.code, "WORKER_CRASHED");
  t.false(/exited|stopped answering/.test(spawn.end.error?.message ?? ""), spawn.end.error?.message);
  t.true(narrations(spawn, "worker_started").length === 1, "the worker did start");
  t.deepEqual(await listWorkers(hive.client), []);
  const left = await waitFor("only the hive left running", async () => {
    const pids = await pidsMentioning(home);
    return pids.every((pid) => pid === hive.child.pid) && pids;
  });
  t.deepEqual(left, [hive.child.pid!]);
});

test("catalog operations answer with the contract's payloads; downloaded bytes are counted in /metrics", async (t) => {
  const hive = await startHive(t);
  const tiny = await readFile(await ensureRbeeTiny(path.join(hive.home, "src")));
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(tiny.length) }).end(tiny);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;

  const download = await runJob(hive.client, { operation: "model_download", model: `http://127.0.0.1:${port}/files/Tiny-Copy.gguf` });
  t.is(download.end.status, "completed", JSON.stringify(download.end.error));
  const model = dataOf(download, "model_download") as Record<string, unknown>;
  t.deepEqual(Object.keys(model).sort(), ["architecture", "context_length", "id", "layers", "parameters", "quantization", "size_bytes"]);
  t.like(model, { id: "tiny-copy", size_bytes: tiny.length, architecture: "llama" });

  const imported = await runJob(hive.client, { operation: "model_import", path: path.join(hive.home, "src", "rbee-tiny.gguf"), name: "imported" });
  t.like(dataOf(imported, "model_import"), { id: "imported", size_bytes: tiny.length });
  t.like(dataOf(await runJob(hive.client, { operation: "model_get", model: "tiny-copy" }), "model_get"), { id: "tiny-copy", layers: 4 });
  const list = dataOf(await runJob(hive.client, { operation: "model_list" }), "model_list") as { models: { id: string }[] };
  t.deepEqual(list.models.map((m) => m.id).sort(), ["imported", "tiny-copy"]);

  const metrics = await (await request(`${hive.url}/metrics`)).body.text();
  t.regex(metrics, new RegExp(`rbee_hive_download_bytes_total\\{[^}]*\\} ${tiny.length}\\b`));
});
