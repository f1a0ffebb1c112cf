/** rbee's daemons (or any server) as child processes of a test: started, waited for by their output, stopped. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Teardown } from "./cleanup.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const dist = (name: "queen" | "hive" | "worker"): string => path.join(ROOT, "dist", "daemons", name, "main.js");
export const daemonsBuilt = existsSync(dist("queen")) && existsSync(dist("hive")) && existsSync(dist("worker"));

/** This process's environment with `extra` on top; RBEE_TOKEN only where `extra` sets it (a developer's own would lock the tests out). */
export function daemonEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (extra["RBEE_TOKEN"] === undefined) delete env["RBEE_TOKEN"];
  return env;
}

/** `--worker-port-start` at a random port unless `args` has one: the hives of tests run side by side rarely collide. */
export const workerPortStart = (args: readonly string[]): string[] =>
  args.includes("--worker-port-start") ? [] : ["--worker-port-start", String(20_000 + Math.floor(Math.random() * 40_000))];

export const LISTENING = /^listening (\S+)$/m;

/**
 * Resolves with the first match of `re` in what `child` prints from now on (stdout and stderr together);
 * rejects with that output when the child exits first or `ms` pass.
 */
export function waitForLine(child: ChildProcess, re: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    const done = (): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
    };
    const onData = (d: Buffer | string): void => {
      out += d.toString();
      const m = re.exec(out);
      if (m) (done(), resolve(m));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      done();
      reject(new Error(`exited (${code ?? signal}) before printing ${re}: ${out}`));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const timer = setTimeout(() => (done(), reject(new Error(`nothing matching ${re} within ${ms} ms: ${out}`))), ms);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

export interface Daemon {
  /** the first group of its ready line: the URL it listens on ("" with noWait) */
  url: string;
  child: ChildProcess;
  pid: number;
  /** stdout and stderr so far */
  output: () => string;
  /** its exit code (null when a signal ended it) */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGTERM), SIGKILL after the grace; resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface DaemonOptions {
  /** the whole environment (default: daemonEnv()) */
  env?: NodeJS.ProcessEnv;
  /** the line that says it is up, its first group the URL (default LISTENING) */
  ready?: RegExp;
  /** how long to wait for that line */
  deadlineMs?: number;
  /** how long stop() waits after its signal before SIGKILL */
  graceMs?: number;
  /** the signal the teardown stops it with */
  teardownSignal?: NodeJS.Signals;
  /** return at once, without waiting for the ready line (a daemon expected to refuse to start) */
  noWait?: boolean;
  /** "pipe" holds its stdin open, as a hive holds a worker's (default "ignore") */
  stdin?: "ignore" | "pipe";
}

/** Spawns `argv` and resolves at its ready line (rejecting with its output if it exits first or is late); stopped at teardown. */
export async function startDaemon(t: Teardown, argv: readonly string[], o: DaemonOptions = {}): Promise<Daemon> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error("startDaemon: empty argv");
  const child = spawn(command, args, { env: o.env ?? daemonEnv(), stdio: [o.stdin ?? "ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const stop = async (signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), o.graceMs ?? 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  t.teardown(() => stop(o.teardownSignal));
  const daemon: Daemon = { url: "", child, pid: child.pid ?? 0, output: () => out, exited, stop };
  if (o.noWait) return daemon;
  const entry = argv.find((a) => a.startsWith(ROOT));
  const name = entry ? path.relative(ROOT, entry) : path.basename(command);
  try {
    daemon.url = (await waitForLine(child, o.ready ?? LISTENING, o.deadlineMs ?? 60_000))[1] ?? "";
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`);
  }
  return daemon;
}
