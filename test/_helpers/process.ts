/** Processes and ports as the tests see them, read from /proc and the kernel, never from timing. */
import { readFileSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import type { Teardown } from "./cleanup.js";

const ZOMBIE = /^\d+ \(.*\) Z/;

/** True when a process with this pid exists and has not exited (a zombie, not yet reaped by its parent, has). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !ZOMBIE.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Pids of live processes whose command line mentions `text` (a test's RBEE_HOME), read from /proc. */
export async function pidsMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      if (cmdline.includes(text) && !ZOMBIE.test(stat)) pids.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Last resort of a teardown: SIGKILL for every live process whose command line names `dir` (its --log-file or --model is under it). */
export async function killUnder(dir: string): Promise<void> {
  for (const pid of await pidsMentioning(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

function bind(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(s));
  });
}

const portOf = (s: Server): number => (s.address() as { port: number }).port;

/** A port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = await bind(0);
  const port = portOf(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A port on 127.0.0.1 kept taken until teardown. */
export async function holdPort(t: Teardown): Promise<number> {
  const s = await bind(0);
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return portOf(s);
}
