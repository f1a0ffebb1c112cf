/** keep_alive: a worker idle longer than its keep_alive seconds is stopped (-1 never, 0 at once). */

export interface IdleView {
  id: string;
  state: "starting" | "ready" | "busy" | "stopping";
  /** jobs this hive has on the worker */
  inflight: number;
  /** busy slots the worker itself reported (jobs sent to it by others) */
  busySlots: number;
  /** seconds; -1 forever */
  keepAlive: number;
  /** when it last went idle (ms) */
  idleSince: number;
}

/** True when the worker has been idle past its keep_alive at `now`. */
export function idleExpired(w: IdleView, now: number): boolean {
  if (w.state !== "ready" || w.inflight > 0 || w.busySlots > 0 || w.keepAlive < 0) return false;
  return now - w.idleSince >= w.keepAlive * 1000;
}

/** Checks the workers a few times a second and stops those idle past their keep_alive. */
export class IdleReaper {
  private readonly timer: NodeJS.Timeout;

  constructor(
    workers: () => readonly IdleView[],
    stop: (id: string, idleMs: number) => void,
    now: () => number = Date.now,
    tickMs = 250,
  ) {
    this.timer = setInterval(() => {
      const t = now();
      for (const w of workers()) if (idleExpired(w, t)) stop(w.id, t - w.idleSince);
    }, tickMs);
    this.timer.unref();
  }

  dispose(): void {
    clearInterval(this.timer);
  }
}
