import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import * as os from "node:os";

export type GpuKind = "cuda" | "vulkan" | "metal";

/** The contract's device object; memory in bytes. */
export interface Device {
  id: string;
  kind: "cpu" | GpuKind;
  name: string;
  memory_total: number;
  memory_free: number;
}

/** What a GPU probe found: the backend, one name per GPU, and VRAM summed over all of them. */
export interface GpuInfo {
  kind: GpuKind;
  names: string[];
  memory_total: number;
  memory_free: number;
}
export type GpuProbe = () => Promise<GpuInfo | null>;

export interface SystemMemory {
  total: number;
  free: number;
}

/** System RAM: MemAvailable from /proc/meminfo where there is one (free RAM undercounts reclaimable cache). */
export async function systemMemory(): Promise<SystemMemory> {
  const total = os.totalmem();
  try {
    const text = await readFile("/proc/meminfo", "utf8");
    const m = /^MemAvailable:\s+(\d+)\s*kB/m.exec(text);
    if (m?.[1] !== undefined) return { total, free: Math.min(total, Number(m[1]) * 1024) };
  } catch {
    // not Linux: os.freemem() below
  }
  return { total, free: os.freemem() };
}

function cpuName(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.replace(/\s+/g, " ").trim();
  return model !== undefined && model !== "" ? model : `${os.arch()} CPU`;
}

/**
 * The hive's devices: `cpu` (system RAM) always, then `gpu:0`, `gpu:1`, ... The GPU probe runs once, on the first
 * call; RAM is read again on every call. node-llama-cpp reports VRAM summed over all GPUs, so it is split evenly
 * between them, and GPU memory is as seen at probe time (the hive accounts for what its workers take).
 */
export class Devices {
  private gpu: Promise<GpuInfo | null> | undefined;
  private probed: GpuInfo | null | undefined;

  constructor(
    private readonly probe: GpuProbe = nodeLlamaCppProbe,
    private readonly memory: () => Promise<SystemMemory> = systemMemory,
  ) {}

  /** The GPU backend; false on a CPU-only machine; undefined until the first detect(). */
  get gpuKind(): GpuKind | false | undefined {
    if (this.probed === undefined) return undefined;
    return this.probed === null ? false : this.probed.kind;
  }

  async detect(): Promise<Device[]> {
    this.gpu ??= this.probe().then(
      (found) => found ?? null,
      () => null,
    );
    const [gpu, ram] = await Promise.all([this.gpu, this.memory()]);
    this.probed = gpu;
    const devices: Device[] = [{ id: "cpu", kind: "cpu", name: cpuName(), memory_total: ram.total, memory_free: ram.free }];
    if (gpu !== null) devices.push(...gpuDevices(gpu));
    return devices;
  }

  list(): Promise<Device[]> {
    return this.detect();
  }
}

/** One device per GPU name (one at least); summed VRAM split evenly, the remainder on the last. */
export function gpuDevices(gpu: GpuInfo): Device[] {
  const names = gpu.names.length > 0 ? gpu.names : [`${gpu.kind.toUpperCase()} GPU`];
  const n = names.length;
  const share = (bytes: number, i: number) => {
    const each = Math.floor(Math.max(0, bytes) / n);
    return i === n - 1 ? Math.max(0, bytes) - each * (n - 1) : each;
  };
  return names.map((name, i) => ({
    id: `gpu:${i}`,
    kind: gpu.kind,
    name,
    memory_total: share(gpu.memory_total, i),
    memory_free: share(gpu.memory_free, i),
  }));
}

const PROBE_MARK = "rbee-gpu-probe ";
// Read from stdin (`node -`), not `-e`: node-llama-cpp forks itself with process.execArgv, which would hold `-e`.
// node-llama-cpp's index takes about 300 ms to import and a spawn waits for this probe, so the GPU types come from
// the one small module that answers them (the index's own export where that path ever moves); only a machine with a
// GPU runtime imports the index.
const PROBE_SCRIPT = `
(async () => {
  const index = process.argv[2];
  const { getLlamaGpuTypes } = await import(new URL("./bindings/utils/getLlamaGpuTypes.js", index).href).catch(() => import(index));
  let out = null;
  const types = await getLlamaGpuTypes("supported");
  if (types.some((t) => t !== false)) {
    const { getLlama } = await import(index);
    const llama = await getLlama({ gpu: "auto", build: "never", skipDownload: true, progressLogs: false, logLevel: "error", logger: () => {} });
    if (llama.gpu !== false) {
      const vram = await llama.getVramState();
      out = { kind: llama.gpu, names: await llama.getGpuDeviceNames(), memory_total: vram.total, memory_free: vram.free };
    }
    await llama.dispose();
  }
  process.stdout.write("\\n${PROBE_MARK}" + JSON.stringify(out) + "\\n");
})().then(() => process.exit(0), (err) => {
  process.stderr.write(String((err && err.message) || err) + "\\n");
  process.exit(1);
});
`;

export interface ProbeOptions {
  /** told why the probe failed (the hive then runs CPU only) */
  onError?: (message: string) => void;
  timeoutMs?: number;
}

/**
 * A GpuProbe over node-llama-cpp: `getLlamaGpuTypes("supported")`, then, only when a GPU backend may work,
 * `getLlama({gpu: "auto", build: "never"})`, its `gpu`, `getGpuDeviceNames()` and `getVramState()`. It runs at
 * most once (the result is kept); any failure means CPU only.
 */
export function createNodeLlamaCppProbe(opts: ProbeOptions = {}): GpuProbe {
  let result: Promise<GpuInfo | null> | undefined;
  return () => (result ??= runProbe(opts));
}

async function runProbe(opts: ProbeOptions): Promise<GpuInfo | null> {
  let moduleUrl: string;
  try {
    moduleUrl = import.meta.resolve("node-llama-cpp");
  } catch (err) {
    opts.onError?.(`node-llama-cpp cannot be found: ${(err as Error).message}`);
    return null;
  }
  const stdout = await new Promise<string | null>((resolve) => {
    const child = execFile(
      process.execPath,
      ["-", moduleUrl],
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 4 * 1024 * 1024, windowsHide: true },
      (err, out, errOut) => {
        if (err) {
          opts.onError?.(`GPU probe failed: ${err.message.split("\n")[0] ?? ""} ${String(errOut).trim().split("\n").at(-1) ?? ""}`.trim());
          resolve(null);
        } else resolve(String(out));
      },
    );
    child.stdin?.end(PROBE_SCRIPT);
  });
  if (stdout === null) return null;
  const line = stdout.split("\n").reverse().find((l) => l.startsWith(PROBE_MARK));
  try {
    return parseGpuInfo(JSON.parse(line?.slice(PROBE_MARK.length) ?? "null"));
  } catch (err) {
    opts.onError?.(`GPU probe answered nonsense: ${(err as Error).message}`);
    return null;
  }
}

function parseGpuInfo(v: unknown): GpuInfo | null {
  if (v === null || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  const kind = o["kind"];
  if (kind !== "cuda" && kind !== "vulkan" && kind !== "metal") return null;
  const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : 0);
  const names = Array.isArray(o["names"]) ? o["names"].filter((n): n is string => typeof n === "string") : [];
  return { kind, names, memory_total: num(o["memory_total"]), memory_free: num(o["memory_free"]) };
}

/** The probe daemons use: once per process. */
export const nodeLlamaCppProbe: GpuProbe = createNodeLlamaCppProbe();
