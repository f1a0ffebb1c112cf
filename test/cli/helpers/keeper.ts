/** Runs the built keeper (dist/cli/rbee.js) as a real process with a clean environment, piped or on a pseudo-terminal. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../_helpers/daemon.js";

export const KEEPER = join(ROOT, "dist/cli/rbee.js");

export function assertBuilt(): void {
  if (!existsSync(KEEPER)) throw new Error(`${KEEPER} is missing: run npm run build (npx tsc -p tsconfig.json) first.`);
}

/** The test's environment minus anything that would steer the keeper (queen URL, token, CI detection in Ink). */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(RBEE_|CI$|CI_|CONTINUOUS_INTEGRATION$|XDG_)/.test(k) || k === "NODE_OPTIONS") continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export interface KeeperOptions {
  env: NodeJS.ProcessEnv;
  input?: string;
  /** Another build of the keeper (the auto-start tests run a copy of dist/). */
  entry?: string;
  cwd?: string;
  timeoutMs?: number;
}

export function startKeeper(args: string[], opts: KeeperOptions): Running {
  const child = spawn(process.execPath, [opts.entry ?? KEEPER, ...args], { env: opts.env, cwd: opts.cwd ?? ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  else child.stdin?.end();
  const killer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.once("close", (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  return { child, stdout: () => out, stderr: () => err, done };
}

export const runKeeper = (args: string[], opts: KeeperOptions) =>
  startKeeper(args, opts).done;

/** Runs the keeper on a COLUMNS x LINES pseudo-terminal (util-linux `script`); everything it drew and its exit status. */
export function underPty(args: string[], env: NodeJS.ProcessEnv, o: { columns?: number; lines?: number; timeoutMs?: number } = {}): Promise<{ code: number | null; screen: string }> {
  const { columns = 100, lines = 30 } = o;
  const quoted = [process.execPath, KEEPER, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const child = spawn("script", ["-qfec", `stty cols ${columns} rows ${lines}; exec ${quoted}`, "/dev/null"], {
    cwd: ROOT,
    env: { ...env, COLUMNS: String(columns), LINES: String(lines), TERM: "xterm-256color" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let screen = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (screen += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (screen += d));
  const killer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
  return new Promise((resolve) => child.once("close", (code) => {
    clearTimeout(killer);
    resolve({ code, screen });
  }));
}

/** A screen without escape codes and carriage returns. */
export const plain = (s: string): string => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
