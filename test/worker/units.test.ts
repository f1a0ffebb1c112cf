import test from "ava";
import { RbeeError } from "../../shared/errors.js";
import { modelIdFromPath, parseWorkerFlags } from "../../daemons/worker/config.js";
import { SlotPool } from "../../daemons/worker/slots.js";
import { StopMatcher } from "../../daemons/worker/stop-strings.js";
import { BYTES_PER_THREAD, chooseThreads } from "../../daemons/worker/threads.js";

test("slots go to waiting jobs in arrival order, each told its place", async (t) => {
  const pool = new SlotPool<string>(8);
  const places: number[] = [];
  const order: string[] = [];
  const waiting = [1, 2, 3].map((n) => pool.acquire({ onQueued: (place) => places.push(place) }).then((lease) => {
    order.push(`job${n}`);
    return lease;
  }));
  t.deepEqual(places, [1, 2, 3]);
  t.is(pool.queued, 3);
  pool.add(["s1"]);
  const first = await waiting[0];
  t.is(first?.item, "s1");
  t.is(pool.busy, 1);
  first?.release();
  first?.release();
  const second = await waiting[1];
  second?.release();
  const third = await waiting[2];
  t.deepEqual(order, ["job1", "job2", "job3"]);
  t.is(pool.busy, 1);
  third?.release();
  t.is(pool.busy, 0);
  t.is(pool.queued, 0);
});

test("a cancelled waiter leaves the line; past maxQueue is QUEUE_FULL; close fails the rest", async (t) => {
  const pool = new SlotPool<number>(2);
  pool.add([1]);
  const held = await pool.acquire();
  const ac = new AbortController();
  const a = pool.acquire({ signal: ac.signal });
  const b = pool.acquire();
  const full = await t.throwsAsync(pool.acquire(), { instanceOf: RbeeError });
  t.is((full as RbeeError).code, "QUEUE_FULL");
  const reason = new Error("gone");
  ac.abort(reason);
  t.is(await a.catch((e: unknown) => e), reason);
  t.is(pool.queued, 1);
  held.release();
  t.is((await b).item, 1);
  const c = pool.acquire();
  pool.close(new RbeeError("CANCELLED", "stopping"));
  t.is(((await c.catch((e: unknown) => e)) as RbeeError).code, "CANCELLED");
  t.is(((await pool.acquire().catch((e: unknown) => e)) as RbeeError).code, "CANCELLED");
});

test("stop strings are held back while they may still match and never emitted", (t) => {
  const m = new StopMatcher(["</end>", "STOP"]);
  t.deepEqual(m.push("hello </"), { emit: "hello ", stopped: false });
  t.deepEqual(m.push("en"), { emit: "", stopped: false });
  t.deepEqual(m.push("x> more S"), { emit: "</enx> more ", stopped: false });
  t.deepEqual(m.push("TOP and after"), { emit: "", stopped: true });
  t.is(m.flush(), "");
  const n = new StopMatcher(["abc"]);
  t.deepEqual(n.push("xab"), { emit: "x", stopped: false });
  t.is(n.flush(), "ab");
  t.deepEqual(new StopMatcher([]).push("as is"), { emit: "as is", stopped: false });
});

test("threads: tiny models get one, big ones one per 64 MiB on the CPU, leaving a core free", (t) => {
  const probe = { mathCores: 8, availableCores: 16, modelBytes: 3_000_000, gpuLayers: 0, totalLayers: 5 };
  t.is(chooseThreads(undefined, probe).threads, 1);
  t.is(chooseThreads(undefined, { ...probe, modelBytes: 3 * BYTES_PER_THREAD }).threads, 3);
  t.is(chooseThreads(undefined, { ...probe, modelBytes: 100 * BYTES_PER_THREAD }).threads, 7);
  t.is(chooseThreads(undefined, { ...probe, mathCores: 2, availableCores: 2, modelBytes: 100 * BYTES_PER_THREAD }).threads, 1);
  // fully offloaded: the CPU has almost nothing to do
  t.is(chooseThreads(undefined, { ...probe, modelBytes: 100 * BYTES_PER_THREAD, gpuLayers: 5 }).threads, 1);
  t.deepEqual(chooseThreads(4, probe), { threads: 4, why: "--threads 4" });
  t.regex(chooseThreads(undefined, probe).why, /^auto: /);
});

test("flags: defaults, model id from the file name, and refusals", (t) => {
  const c = parseWorkerFlags({ model: "/m/Llama-3.2-1B.Q4_K_M.gguf" });
  t.like(c, { modelId: "llama-3.2-1b.q4_k_m", device: "auto", gpuLayers: "auto", parallel: 1, maxQueue: 64, threads: undefined, contextSize: undefined });
  t.regex(c.workerId, /^worker-/);
  t.like(parseWorkerFlags({ model: "/m.gguf", "gpu-layers": "12", threads: "3", device: "gpu:1", "context-size": "64" }), { gpuLayers: 12, threads: 3, device: "gpu:1", contextSize: 64 });
  t.is(modelIdFromPath("/x/My Model.GGUF"), "my-model");
  t.throws(() => parseWorkerFlags({}), { message: /--model PATH is required/ });
  t.throws(() => parseWorkerFlags({ model: "/m.gguf", "gpu-layers": "most" }), { message: /--gpu-layers/ });
  t.throws(() => parseWorkerFlags({ model: "/m.gguf", parallel: "65" }), { message: /--parallel/ });
  t.throws(() => parseWorkerFlags({ model: "/m.gguf", "context-size": "32" }), { message: /--context-size/ });
});
