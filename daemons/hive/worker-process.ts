/**
 * One `llm-worker-rbee` child process: started with stdout piped (for its `listening <url>` line)
 * and stderr on its log file, stdin kept open as a pipe so the worker sees the hive go away, and
 * stopped politely first, then by signal.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, createWriteStream, openSync } from "node:fs";
import { open } from "node:fs/promises";
import { createInterface } from "node:readline";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The worker could not bind its port (someone took it between our check and its bind). */
export class PortInUseError extends Error {
  override readonly name = "PortInUseError";
}

export interface StartOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  startTimeoutMs: number;
  signal?: AbortSignal;
}

export const describeExit = (e: ExitInfo): string => (e.signal ? `signal ${e.signal}` : `exit code ${e.code}`);

async function logTail(file: string, bytes = 4096): Promise<string> {
  try {
    const handle = await open(file, "r");
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - bytes);
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      return buf.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return "";
  }
}

const lastLine = (text: string): string => text.trim().split("\n").pop()?.slice(0, 300) ?? "";

export class WorkerProcess {
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Starts the worker and resolves with its URL once it prints `listening <url>`. */
  static start(opts: StartOptions): Promise<{ proc: WorkerProcess; url: string }> {
    const fd = openSync(opts.logFile, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(opts.command, opts.args, { stdio: ["pipe", "pipe", fd], env: opts.env });
    } finally {
      closeSync(fd);
    }
    // Never written to: the pipe exists so the worker sees EOF when the hive dies.
    child.stdin?.on("error", () => {});
    const proc = new WorkerProcess(child);
    const copy = createWriteStream(opts.logFile, { flags: "a" });
    copy.on("error", () => {});
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const timer = setTimeout(() => {
        proc.signal("SIGKILL");
        settle(() => reject(new Error(`llm-worker-rbee did not print its listening line within ${opts.startTimeoutMs / 1000} s (see ${opts.logFile}).`)));
      }, opts.startTimeoutMs);
      const onAbort = (): void => {
        proc.signal("SIGKILL");
        settle(() => reject(opts.signal?.reason));
      };
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener("abort", onAbort, { once: true });
      child.once("error", (err) => settle(() => reject(new Error(`cannot start llm-worker-rbee: ${err.message}`))));
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        copy.write(`${line}\n`);
        const m = /^listening (\S+)/.exec(line);
        if (m?.[1]) settle(() => resolve({ proc, url: m[1] as string }));
      });
      lines.once("close", () => copy.end());
      void proc.exited.then(async (exit) => {
        if (settled) return;
        const tail = await logTail(opts.logFile);
        const why = `llm-worker-rbee exited (${describeExit(exit)}) before listening: ${lastLine(tail) || "no output"}`;
        settle(() => reject(/EADDRINUSE|already in use/.test(tail) ? new PortInUseError(why) : new Error(why)));
      });
    });
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(sig);
  }

  /** Resolves true when the process has exited within `ms`. */
  private async waitExit(ms: number): Promise<boolean> {
    if (this.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const done = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return done;
  }

  /** Asks the worker to shut down, then SIGTERM after `graceMs`, then SIGKILL after `termMs` more. */
  async stop(askShutdown: () => Promise<unknown>, graceMs = 3000, termMs = 2000): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    await Promise.race([askShutdown().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    if (!(await this.waitExit(graceMs))) {
      this.signal("SIGTERM");
      if (!(await this.waitExit(termMs))) this.signal("SIGKILL");
    }
    return this.exited;
  }
}
