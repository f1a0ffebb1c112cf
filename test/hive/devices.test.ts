import test from "ava";
import * as os from "node:os";
import { Devices, createNodeLlamaCppProbe, gpuDevices, systemMemory, type GpuProbe } from "../../daemons/hive/devices.js";

const GiB = 1024 ** 3;

test("the CPU device is always there, with system RAM and the CPU's name", async (t) => {
  const devices = await new Devices(async () => null).detect();
  t.is(devices.length, 1);
  const cpu = devices[0];
  t.is(cpu?.id, "cpu");
  t.is(cpu?.kind, "cpu");
  t.true((cpu?.name.length ?? 0) > 0);
  t.is(cpu?.memory_total, os.totalmem());
  t.true((cpu?.memory_free ?? 0) > 0);
  t.true((cpu?.memory_free ?? Infinity) <= (cpu?.memory_total ?? 0));
  t.deepEqual(Object.keys(cpu ?? {}).sort(), ["id", "kind", "memory_free", "memory_total", "name"]);
});

test("systemMemory reads sane numbers", async (t) => {
  const m = await systemMemory();
  t.true(m.total > 0);
  t.true(m.free > 0 && m.free <= m.total);
});

test("an injected probe gives one gpu:N device per GPU, VRAM split evenly", async (t) => {
  const probe: GpuProbe = async () => ({ kind: "cuda", names: ["NVIDIA A", "NVIDIA B"], memory_total: 48 * GiB + 1, memory_free: 40 * GiB });
  const devices = new Devices(probe);
  t.is(devices.gpuKind, undefined, "unknown before the first detect");
  const list = await devices.detect();
  t.is(devices.gpuKind, "cuda");
  t.deepEqual(
    list.map((d) => [d.id, d.kind, d.name]),
    [
      ["cpu", "cpu", list[0]?.name ?? ""],
      ["gpu:0", "cuda", "NVIDIA A"],
      ["gpu:1", "cuda", "NVIDIA B"],
    ],
  );
  t.is(list[1]?.memory_total, 24 * GiB);
  t.is(list[2]?.memory_total, 24 * GiB + 1, "the remainder goes to the last GPU");
  t.is((list[1]?.memory_free ?? 0) + (list[2]?.memory_free ?? 0), 40 * GiB);
});

test("a GPU without a name still makes a device", (t) => {
  t.deepEqual(gpuDevices({ kind: "metal", names: [], memory_total: 100, memory_free: 50 }), [
    { id: "gpu:0", kind: "metal", name: "METAL GPU", memory_total: 100, memory_free: 50 },
  ]);
});

test("the GPU probe runs once; RAM is read on every call", async (t) => {
  let probes = 0;
  let reads = 0;
  const devices = new Devices(
    async () => {
      probes++;
      return { kind: "vulkan", names: ["iGPU"], memory_total: 8 * GiB, memory_free: 6 * GiB };
    },
    async () => ({ total: 16 * GiB, free: (10 + reads++) * GiB }),
  );
  const [a, b] = await Promise.all([devices.detect(), devices.list()]);
  const c = await devices.detect();
  const d = await devices.list();
  t.is(probes, 1);
  t.is(reads, 4);
  t.is(a.length, 2);
  t.is(b[1]?.id, "gpu:0");
  t.not(c[0]?.memory_free, d[0]?.memory_free, "free RAM is fresh on each call");
  t.is(d[1]?.memory_free, 6 * GiB);
});

test("a failing probe means CPU only", async (t) => {
  let probes = 0;
  const devices = new Devices(async () => {
    probes++;
    throw new Error("driver exploded");
  });
  t.deepEqual(
    (await devices.detect()).map((d) => d.id),
    ["cpu"],
  );
  await devices.detect();
  t.is(probes, 1);
  t.is(devices.gpuKind, false);
});

test("the node-llama-cpp probe runs for real, once, and is quick after the first call", async (t) => {
  const errors: string[] = [];
  const probe = createNodeLlamaCppProbe({ onError: (m) => errors.push(m) });
  const devices = new Devices(probe);
  const started = performance.now();
  const first = await devices.detect();
  const firstMs = performance.now() - started;
  const again = performance.now();
  const second = await devices.detect();
  const secondMs = performance.now() - again;
  t.log(`first detect ${firstMs.toFixed(0)} ms (GPU probe), next ${secondMs.toFixed(1)} ms; gpu: ${String(devices.gpuKind)}`);
  t.deepEqual(errors, []);
  t.is(first[0]?.id, "cpu");
  for (const d of first.slice(1)) t.regex(d.id, /^gpu:\d+$/);
  t.deepEqual(
    second.map((d) => d.id),
    first.map((d) => d.id),
  );
  t.not(devices.gpuKind, undefined);
  t.is(await probe(), await probe(), "the probe keeps its one result");
});
