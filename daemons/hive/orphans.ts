/**
 * Workers an earlier process of this hive left running when it died without stopping them
 * (SIGKILL, out of memory): they hold their model's memory and serve nobody. Found through /proc
 * (Linux; elsewhere nothing is found) by their command line: this hive's worker ids and state folder.
 */
import { readFile, readdir } from "node:fs/promises";
import * as path from "node:path";
import type { Logger } from "../../shared/log.js";

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function cmdline(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return text === "" ? [] : text.split("\0");
}

const flag = (args: string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const isHive = (args: string[]): boolean => args.some((a) => /(^|\/)rbee-hive$|hive\/main\.js$/.test(a));

/** Pids of workers of `hiveId` logging into `stateDir` whose parent is no longer a hive. */
export async function findOrphanWorkers(hiveId: string, stateDir: string): Promise<number[]> {
  const names = await readdir("/proc").catch(() => [] as string[]);
  const found: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const pid = Number(name);
    const args = await cmdline(pid);
    const id = flag(args, "--worker-id");
    const log = flag(args, "--log-file");
    if (!id?.startsWith(`${hiveId}-w`) || log === undefined || path.dirname(path.resolve(log)) !== path.resolve(stateDir)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // Fields after the command name (which may hold spaces): state, then the parent pid.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!isHive(await cmdline(ppid))) found.push(pid);
  }
  return found;
}

/** Stops orphaned workers: SIGTERM, then SIGKILL for any still there after `graceMs`. */
export async function reapOrphanWorkers(hiveId: string, stateDir: string, logger: Logger, graceMs = 5000): Promise<number[]> {
  const pids = await findOrphanWorkers(hiveId, stateDir);
  if (pids.length === 0) return pids;
  logger.warn("worker_orphans", `Stopping ${pids.length} worker(s) left running by an earlier rbee-hive ${hiveId} (pid ${pids.join(", ")}).`, { target: hiveId });
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // it exited meanwhile
    }
  };
  for (const pid of pids) signal(pid, "SIGTERM");
  const until = Date.now() + graceMs;
  let left = pids;
  while (left.length > 0 && Date.now() < until) {
    await pause(100);
    left = (await findOrphanWorkers(hiveId, stateDir)).filter((p) => pids.includes(p));
  }
  for (const pid of left) signal(pid, "SIGKILL");
  return pids;
}
