/** What the run was measured on: machine, versions, date, load. */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);

export interface MachineInfo {
  cpu_model: string;
  cores_logical: number;
  cores_available: number;
  ram_gib: number;
  os: string;
  kernel: string;
  arch: string;
  load_average_start: number[];
}

export interface Versions {
  node: string;
  rbee: string;
  node_llama_cpp: string;
  llama_cpp_release: string;
  llama_cpp_commit: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const osRelease = await readFile("/etc/os-release", "utf8").catch(() => "");
  const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(osRelease)?.[1];
  return {
    cpu_model: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown",
    cores_logical: os.cpus().length,
    cores_available: os.availableParallelism(),
    ram_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: pretty ?? `${os.type()} ${os.release()}`,
    kernel: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    load_average_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export const loadAverage = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, "utf8").catch(() => "{}")) as Record<string, unknown>;
}

/** The llama.cpp commit that ships with node-llama-cpp: the head of its git bundle. */
export async function llamaCppCommit(): Promise<string> {
  const bundle = path.join(ROOT, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
  try {
    const { stdout } = await run("git", ["bundle", "list-heads", bundle]);
    return /^([0-9a-f]{40})/m.exec(stdout)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

export async function versions(): Promise<Versions> {
  const pkg = await readJson(path.join(ROOT, "package.json"));
  const nlc = await readJson(path.join(ROOT, "node_modules/node-llama-cpp/package.json"));
  const info = await readJson(path.join(ROOT, "node_modules/node-llama-cpp/llama/llama.cpp.info.json"));
  return {
    node: process.version,
    rbee: String(pkg["version"] ?? "unknown"),
    node_llama_cpp: String(nlc["version"] ?? "unknown"),
    llama_cpp_release: String(info["tag"] ?? "unknown"),
    llama_cpp_commit: await llamaCppCommit(),
  };
}
