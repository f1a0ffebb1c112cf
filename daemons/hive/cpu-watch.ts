/**
 * Tells a worker that is slow to answer because it computes (on an overloaded machine its event loop
 * runs late) from one that hangs (stopped, deadlocked): the first one's main thread still uses CPU
 * time. The main thread alone (/proc/<pid>/task/<pid>/stat), because llama.cpp's threads keep a
 * generating worker busy whatever its event loop does; where there is no /proc nothing is known.
 */
import { readFileSync } from "node:fs";

/** User plus system CPU time of a process's main thread, in clock ticks; undefined when unknown, stopped or gone. */
export function cpuTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const state = rest[0];
  if (state === "Z" || state === "X" || state === "T" || state === "t") return undefined;
  const ticks = Number(rest[11]) + Number(rest[12]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

export class CpuWatch {
  private ticks = -1;
  private progressAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly pid: number, private readonly read: (pid: number) => number | undefined = cpuTicks) {}

  /** Takes one reading; call it every poll. */
  sample(now: number): void {
    const t = this.read(this.pid);
    if (t === undefined) {
      this.progressAt = Number.NEGATIVE_INFINITY;
      return;
    }
    if (this.ticks >= 0 && t > this.ticks) this.progressAt = now;
    this.ticks = t;
  }

  /** True when the process used CPU time within the last `windowMs` (and is not stopped). */
  busy(now: number, windowMs: number): boolean {
    return now - this.progressAt <= windowMs;
  }
}
