/**
 * Processes the benchmark starts: every child is tracked and killed (by pid, process group first) when the run
 * ends, however it ends; /proc readings (RSS, CPU time, children).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { rmSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { waitForLine } from "../../test/_helpers/daemon.js";
import { alive, freePort } from "../../test/_helpers/process.js";
import { waitFor } from "../../test/_helpers/wait.js";

export { alive, freePort, waitForLine };

const tracked = new Set<number>();
const tempDirs = new Set<string>();

/** A throw-away folder to remove at exit if the run ends before removing it itself. */
export function trackDir(dir: string): void {
  tempDirs.add(dir);
}
export function untrackDir(dir: string): void {
  tempDirs.delete(dir);
}

/** Spawns a child that the run kills at exit if it is still alive. `detached` makes it a group leader. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  if (child.pid !== undefined) {
    const pid = child.pid;
    tracked.add(pid);
    child.once("exit", () => tracked.delete(pid));
  }
  return child;
}

/** A pid started indirectly (a daemon that a CLI process put in the background) to kill at exit if alive. */
export function trackPid(pid: number): void {
  if (pid > 0) tracked.add(pid);
}
export function untrackPid(pid: number): void {
  tracked.delete(pid);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the pid is gone. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return void tracked.delete(pid);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    /* gone */
  }
  await waitFor(`pid ${pid} to exit`, () => !alive(pid), graceMs).catch(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  });
  tracked.delete(pid);
}

/** Kills whatever tracked process is left (synchronously: usable from an exit handler). */
export function killTracked(): void {
  for (const pid of tracked) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  tracked.clear();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

let installed = false;
/** On exit, SIGINT or SIGTERM: kill every tracked process (and their descendants found in /proc). */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.once("exit", killTracked);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      void (async () => {
        // daemons a CLI process put in the background are known by the pid files in the tracked RBEE_HOMEs
        const daemons: number[] = [];
        for (const dir of tempDirs) {
          const state = `${dir}/state`;
          for (const name of await readdir(state).catch(() => [] as string[])) {
            if (!name.endsWith(".pid")) continue;
            const pid = Number((await readFile(`${state}/${name}`, "utf8").catch(() => "")).trim());
            if (pid > 0 && alive(pid)) daemons.push(pid);
          }
        }
        for (const pid of [...tracked, ...daemons]) for (const d of await descendants(pid)) trackPid(d);
        for (const pid of daemons) {
          trackPid(pid);
          try {
            process.kill(pid, "SIGTERM");
          } catch {
            /* gone */
          }
        }
        await waitFor("the daemons to exit", () => !daemons.some(alive), 5000, 100).catch(() => undefined);
        killTracked();
        process.exit(130);
      })();
    });
  }
}

/** Resident set size of a process, in MiB (VmRSS of /proc/<pid>/status); NaN when it cannot be read. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

/** CPU seconds a process has used (user + system) from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Every process whose parent chain leads to `pid`. */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isFinite(ppid)) parents.set(Number(name), ppid);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of parents) if (parent === p) (out.push(child), walk(child));
  };
  walk(pid);
  return out;
}
