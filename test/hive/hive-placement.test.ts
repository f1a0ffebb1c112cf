import test from "ava";
import { RbeeError } from "../../shared/errors.js";
import { idleExpired, type IdleView } from "../../daemons/hive/idle.js";
import { estimateFromMetadata } from "../../daemons/hive/memory.js";
import {
  availableMemory, chooseWorker, planFit, resolveDevice, resolveGpuLayers, waiting, type DeviceView, type WorkerView,
} from "../../daemons/hive/placement.js";
import { findFreePort, isPortFree } from "../../shared/ports.js";
import { holdPort } from "../_helpers/process.js";

const GiB = 1024 ** 3;
const cpu: DeviceView = { id: "cpu", kind: "cpu", memory_total: 16 * GiB, memory_free: 8 * GiB };
const gpu0: DeviceView = { id: "gpu:0", kind: "cuda", memory_total: 24 * GiB, memory_free: 20 * GiB };
const gpu1: DeviceView = { id: "gpu:1", kind: "cuda", memory_total: 24 * GiB, memory_free: 22 * GiB };

const w = (id: string, over: Partial<WorkerView> = {}): WorkerView => ({ id, model: "m", state: "ready", parallel: 1, inflight: 0, ...over });

test("a ready worker with a free slot wins, the one with most free slots first", (t) => {
  const c = chooseWorker([w("a", { parallel: 2, inflight: 1 }), w("b", { parallel: 4, inflight: 1 }), w("c", { model: "other" })], "m", 64);
  t.is(c.kind, "use");
  t.like(c, { workerId: "b" });
  t.regex((c as { reason: string }).reason, /free slot \(1 of 4 busy\)/);
});

test("a loading worker is used before a busy one, and workers of another model or stopping never", (t) => {
  const c = chooseWorker([w("busy", { state: "busy", inflight: 1 }), w("load", { state: "starting", inflight: 2 }), w("x", { state: "stopping" })], "m", 64);
  t.like(c, { kind: "use", workerId: "load" });
  t.regex((c as { reason: string }).reason, /loading m; the job waits for it \(2 ahead\)/);
});

test("a busy worker with a short queue is used; a long queue means spawning, with it as fallback", (t) => {
  t.like(chooseWorker([w("a", { state: "busy", parallel: 2, inflight: 3 })], "m", 64), { kind: "use", workerId: "a" });
  const c = chooseWorker([w("a", { state: "busy", parallel: 1, inflight: 2 }), w("b", { state: "busy", parallel: 1, inflight: 5 })], "m", 64);
  t.is(c.kind, "spawn");
  t.like(c, { fallback: { workerId: "a" } });
  t.regex(c.reason, /busy with a long queue/);
});

test("no worker of the model: spawn without fallback; full queues give no fallback either", (t) => {
  t.deepEqual(chooseWorker([w("a", { model: "other" })], "m", 64), { kind: "spawn", reason: "no worker has m loaded" });
  const full = chooseWorker([w("a", { state: "busy", inflight: 3 })], "m", 2);
  t.is(full.kind, "spawn");
  t.is((full as { fallback?: unknown }).fallback, undefined);
  t.is(waiting(w("a", { state: "busy", inflight: 3 })), 2);
  t.is(waiting(w("a", { state: "starting", inflight: 3 })), 3);
});

test("devices: cpu, auto picks the GPU with most free memory, a missing one is INVALID_REQUEST naming device", (t) => {
  t.is(resolveDevice("cpu", [cpu, gpu0]).id, "cpu");
  t.is(resolveDevice("auto", [cpu]).id, "cpu");
  t.is(resolveDevice("auto", [cpu, gpu0, gpu1]).id, "gpu:1");
  t.is(resolveDevice("gpu:0", [cpu, gpu0]).id, "gpu:0");
  const err = t.throws(() => resolveDevice("gpu:3", [cpu, gpu0]), { instanceOf: RbeeError });
  t.is(err?.code, "INVALID_REQUEST");
  t.regex(err?.message ?? "", /^device: .*gpu:3.*it has: cpu, gpu:0/);
});

test("gpu_layers on a CPU device is 0, with a warning when layers were asked for", (t) => {
  t.deepEqual(resolveGpuLayers("auto", cpu, false), { gpuLayers: 0 });
  t.deepEqual(resolveGpuLayers(0, cpu, false), { gpuLayers: 0 });
  const max = resolveGpuLayers("max", cpu, false);
  t.is(max.gpuLayers, 0);
  t.regex(max.warning ?? "", /no GPU/);
  t.regex(resolveGpuLayers(12, cpu, true).warning ?? "", /device cpu/);
  t.deepEqual(resolveGpuLayers(12, gpu0, true), { gpuLayers: 12 });
});

test("memory fit: fits as is, or stops idle workers least recently used first (keep_alive -1 last)", (t) => {
  t.deepEqual(planFit(1, 2, []), { fits: true, evict: [], freeAfter: 2 });
  const idle = [
    { id: "forever", lastUsed: 1, estimate: 5, keepAlive: -1 },
    { id: "new", lastUsed: 30, estimate: 5, keepAlive: 300 },
    { id: "old", lastUsed: 10, estimate: 5, keepAlive: 300 },
  ];
  t.deepEqual(planFit(8, 2, idle), { fits: true, evict: ["old", "new"], freeAfter: 12 });
  t.deepEqual(planFit(14, 2, idle), { fits: true, evict: ["old", "new", "forever"], freeAfter: 17 });
  t.deepEqual(planFit(100, 2, idle), { fits: false, evict: [], freeAfter: 2 }, "stops nothing when even all would not make room");
});

test("available memory: RAM less loading workers; VRAM less every worker on it; auto spills to RAM", (t) => {
  const users = [
    { device: "cpu", estimate: 1 * GiB, starting: true },
    { device: "cpu", estimate: 2 * GiB, starting: false },
    { device: "gpu:0", estimate: 4 * GiB, starting: false },
  ];
  t.deepEqual(availableMemory(cpu, 0, [cpu, gpu0], users), { free: 7 * GiB, devices: ["cpu"], known: true });
  t.deepEqual(availableMemory(gpu0, "max", [cpu, gpu0], users), { free: 16 * GiB, devices: ["gpu:0"], known: true });
  t.deepEqual(availableMemory(gpu0, "auto", [cpu, gpu0], users), { free: 23 * GiB, devices: ["gpu:0", "cpu"], known: true });
  t.false(availableMemory({ ...cpu, memory_total: 0 }, 0, [{ ...cpu, memory_total: 0 }], []).known);
});

test("keep_alive: idle past it expires; -1 never; busy, loading or in-use workers never", (t) => {
  const base: IdleView = { id: "a", state: "ready", inflight: 0, busySlots: 0, keepAlive: 2, idleSince: 1000 };
  t.false(idleExpired(base, 2999));
  t.true(idleExpired(base, 3000));
  t.true(idleExpired({ ...base, keepAlive: 0 }, 1000));
  t.false(idleExpired({ ...base, keepAlive: -1 }, 1e12));
  t.false(idleExpired({ ...base, inflight: 1 }, 1e12));
  t.false(idleExpired({ ...base, busySlots: 1 }, 1e12));
  t.false(idleExpired({ ...base, state: "starting" }, 1e12));
});

test("memory estimate: weights + f16 KV cache shrunk by grouped-query attention + overhead", (t) => {
  const meta = { "general.architecture": "llama", "llama.block_count": 32, "llama.embedding_length": 4096, "llama.attention.head_count": 32, "llama.attention.head_count_kv": 8, "llama.context_length": 8192 };
  const e = estimateFromMetadata(meta, 4 * GiB, undefined, 1);
  t.is(e.kvCache, 2 * 2 * 32 * 4096 * (8 / 32) * 4096, "context defaults to 4096 when the model allows more");
  t.is(e.total, e.weights + e.kvCache + e.overhead);
  t.is(estimateFromMetadata(meta, 4 * GiB, 1024, 2).kvCache, 2 * 2 * 32 * 1024 * 2 * 1024);
});

test("ports: the first free one from the start, skipping taken and bound ones", async (t) => {
  const bound = await holdPort(t);
  t.false(await isPortFree(bound));
  const port = await findFreePort(bound, new Set([bound + 1]));
  t.not(port, bound);
  t.not(port, bound + 1);
  t.true(port > bound);
  t.true(await isPortFree(port));
});
