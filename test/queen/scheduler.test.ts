import test from "ava";
import type { DeviceInfo, ModelInfo, WorkerInfo } from "../../daemons/queen/heartbeat.js";
import { MEMORY_HEADROOM, TINY_SIZE_ESTIMATE, place, type HiveView } from "../../daemons/queen/scheduler.js";

const GiB = 1024 ** 3;
const cpu = (free: number, total = 64 * GiB): DeviceInfo => ({ id: "cpu", kind: "cpu", name: "CPU", memory_total: total, memory_free: free });
const gpu = (n: number, free: number, total = 24 * GiB): DeviceInfo => ({ id: `gpu:${n}`, kind: "cuda", name: "RTX", memory_total: total, memory_free: free });
const model = (id: string, size: number): ModelInfo => ({ id, size_bytes: size });
const worker = (worker_id: string, m: string, state = "ready", parallel = 1, busy_slots = 0): WorkerInfo => ({ worker_id, model: m, state, parallel, busy_slots });

function hive(hive_id: string, over: Partial<HiveView> = {}): HiveView {
  return { hive_id, online: true, devices: [cpu(16 * GiB)], workers: [], models: [], ...over };
}

test("a ready worker with the model and a free slot wins over spawning", (t) => {
  const hives = [
    hive("big", { devices: [gpu(0, 20 * GiB)], models: [model("llama", 4 * GiB)] }),
    hive("small", { models: [model("llama", 4 * GiB)], workers: [worker("w1", "llama")] }),
  ];
  const p = place({ model: "llama" }, hives);
  t.like(p, { kind: "worker", hive_id: "small", worker_id: "w1" });
  t.regex((p as { reason: string }).reason, /free slot/);
});

test("the worker with the most free slots is chosen; full workers are skipped", (t) => {
  const hives = [
    hive("a", { workers: [worker("full", "m", "busy", 2, 2), worker("one", "m", "ready", 4, 3)] }),
    hive("b", { workers: [worker("three", "m", "ready", 4, 1)] }),
  ];
  t.like(place({ model: "m" }, hives), { kind: "worker", hive_id: "b", worker_id: "three" });
});

test("queen in-flight jobs count against a worker's slots between heartbeats", (t) => {
  const hives = [
    hive("a", { workers: [worker("wa", "m", "ready", 1, 0)], inflight: { wa: 1 } }),
    hive("b", { workers: [worker("wb", "m", "ready", 1, 0)] }),
  ];
  t.like(place({ model: "m" }, hives), { kind: "worker", worker_id: "wb" });
});

test("VRAM-aware: a new worker goes to the hive with the most free GPU memory that fits the model", (t) => {
  const size = 6 * GiB;
  const hives = [
    hive("laptop", { devices: [cpu(30 * GiB), gpu(0, 4 * GiB)], models: [model("m", size)] }),
    hive("rig", { devices: [cpu(8 * GiB), gpu(0, 9 * GiB), gpu(1, 22 * GiB)], models: [model("m", size)] }),
    hive("box", { devices: [cpu(60 * GiB), gpu(0, 10 * GiB)], models: [model("m", size)] }),
  ];
  const p = place({ model: "m" }, hives);
  t.like(p, { kind: "hive", hive_id: "rig", level: "info" });
  t.regex((p as { reason: string }).reason, /most free GPU memory/);
});

test("a GPU that fits beats more free RAM; with no GPU room the hive with the most free RAM gets a CPU worker", (t) => {
  const size = 6 * GiB;
  const gpuFits = [
    hive("ram", { devices: [cpu(120 * GiB)], models: [model("m", size)] }),
    hive("vram", { devices: [cpu(2 * GiB), gpu(0, 8 * GiB)], models: [model("m", size)] }),
  ];
  t.like(place({ model: "m" }, gpuFits), { kind: "hive", hive_id: "vram" });
  const noGpuRoom = [
    hive("a", { devices: [cpu(10 * GiB), gpu(0, 2 * GiB)], models: [model("m", size)] }),
    hive("b", { devices: [cpu(40 * GiB), gpu(0, 1 * GiB)], models: [model("m", size)] }),
  ];
  const p = place({ model: "m" }, noGpuRoom);
  t.like(p, { kind: "hive", hive_id: "b" });
  t.regex((p as { reason: string }).reason, /free RAM/);
});

test("the model's size with headroom decides what fits", (t) => {
  const size = 10 * GiB;
  const justUnder = Math.ceil(size * MEMORY_HEADROOM) - 1;
  const hives = [
    hive("tight", { devices: [cpu(0), gpu(0, justUnder)], models: [model("m", size)] }),
    hive("roomy", { devices: [cpu(Math.ceil(size * MEMORY_HEADROOM))], models: [model("m", size)] }),
  ];
  t.like(place({ model: "m" }, hives), { kind: "hive", hive_id: "roomy" });
});

test("only hives that have the model are candidates; rbee-tiny can be made anywhere", (t) => {
  const hives = [
    hive("has", { devices: [cpu(2 * GiB)], models: [model("llama", 1 * GiB)] }),
    hive("gpu", { devices: [gpu(0, 20 * GiB)] }),
  ];
  t.like(place({ model: "llama" }, hives), { kind: "hive", hive_id: "has" });
  t.like(place({ model: "rbee-tiny" }, hives), { kind: "hive", hive_id: "gpu" });
  t.like(place({ model: "missing" }, hives), { kind: "error", code: "MODEL_NOT_FOUND" });
  t.true(TINY_SIZE_ESTIMATE < 1 * GiB);
});

test("offline hives are never chosen, even with a free worker", (t) => {
  const hives = [
    hive("down", { online: false, workers: [worker("w", "m")], models: [model("m", GiB)] }),
    hive("up", { models: [model("m", GiB)] }),
  ];
  t.like(place({ model: "m" }, hives), { kind: "hive", hive_id: "up" });
  t.like(place({ model: "m" }, [hives[0]!]), { kind: "error", code: "HIVE_UNREACHABLE" });
});

test("a pinned hive: unknown is HIVE_NOT_FOUND, offline is HIVE_UNREACHABLE, online is used even when another fits better", (t) => {
  const hives = [
    hive("big", { devices: [gpu(0, 40 * GiB)], models: [model("m", GiB)] }),
    hive("small", { devices: [cpu(2 * GiB)], models: [model("m", GiB)] }),
    hive("off", { online: false, models: [model("m", GiB)] }),
  ];
  t.like(place({ model: "m", hive_id: "nope" }, hives), { kind: "error", code: "HIVE_NOT_FOUND" });
  t.like(place({ model: "m", hive_id: "off" }, hives), { kind: "error", code: "HIVE_UNREACHABLE" });
  t.like(place({ model: "m", hive_id: "small" }, hives), { kind: "hive", hive_id: "small" });
});

test("a pinned worker is found on its hive; an unknown one is WORKER_NOT_FOUND unless the hive is pinned too", (t) => {
  const hives = [hive("a", { workers: [worker("w1", "m", "busy", 1, 1)] }), hive("b")];
  t.like(place({ model: "m", worker_id: "w1" }, hives), { kind: "worker", hive_id: "a", worker_id: "w1" });
  t.like(place({ model: "m", worker_id: "w9" }, hives), { kind: "error", code: "WORKER_NOT_FOUND" });
  t.like(place({ model: "m", worker_id: "w9", hive_id: "b" }, hives), { kind: "hive", hive_id: "b", worker_id: "w9" });
  t.like(place({ model: "m", worker_id: "w1", hive_id: "b" }, hives), { kind: "error", code: "WORKER_NOT_FOUND" });
});

test("a loading worker takes the job before a new spawn; busy workers queue it when nothing fits", (t) => {
  const loading = [
    hive("a", { workers: [worker("w", "m", "starting")], models: [model("m", GiB)] }),
    hive("b", { devices: [gpu(0, 20 * GiB)], models: [model("m", GiB)] }),
  ];
  t.like(place({ model: "m" }, loading), { kind: "hive", hive_id: "a" });
  const busy = [
    hive("a", { devices: [cpu(100)], workers: [worker("w", "m", "busy", 1, 1)], models: [model("m", GiB)] }),
    hive("b", { devices: [cpu(100)], models: [model("m", GiB)] }),
  ];
  const p = place({ model: "m" }, busy);
  t.like(p, { kind: "hive", hive_id: "a" });
  t.regex((p as { reason: string }).reason, /busy/);
});

test("when nothing reports room, the biggest hive is tried with a warning (it may stop idle workers)", (t) => {
  const hives = [
    hive("a", { devices: [cpu(100, 8 * GiB)], models: [model("m", 4 * GiB)] }),
    hive("b", { devices: [cpu(100, 32 * GiB)], models: [model("m", 4 * GiB)] }),
  ];
  t.like(place({ model: "m" }, hives), { kind: "hive", hive_id: "b", level: "warn" });
});

test("no online hive at all is HIVE_UNREACHABLE", (t) => {
  t.like(place({ model: "rbee-tiny" }, []), { kind: "error", code: "HIVE_UNREACHABLE" });
});
