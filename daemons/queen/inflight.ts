/** One queen job counted on a hive: moved to its worker once known, released when it ends. */
export interface InflightJob {
  setWorker(workerId: string): void;
  release(): void;
}

/**
 * Queen jobs running on each hive and worker now. Heartbeats are up to a beat old; these counts
 * let placement see the slots its own jobs took since. Jobs whose worker is not known yet count under "".
 */
export class Inflight {
  private readonly counts = new Map<string, Map<string, number>>();

  private bump(hiveId: string, key: string, by: number): void {
    const m = this.counts.get(hiveId) ?? new Map<string, number>();
    const n = (m.get(key) ?? 0) + by;
    if (n > 0) m.set(key, n);
    else m.delete(key);
    if (m.size > 0) this.counts.set(hiveId, m);
    else this.counts.delete(hiveId);
  }

  begin(hiveId: string, workerId?: string): InflightJob {
    let key = workerId ?? "";
    let released = false;
    this.bump(hiveId, key, 1);
    return {
      setWorker: (id) => {
        if (released || id === key) return;
        this.bump(hiveId, key, -1);
        key = id;
        this.bump(hiveId, key, 1);
      },
      release: () => {
        if (released) return;
        released = true;
        this.bump(hiveId, key, -1);
      },
    };
  }

  /** Jobs per worker id on one hive. */
  of(hiveId: string): Record<string, number> {
    return Object.fromEntries(this.counts.get(hiveId) ?? []);
  }
}
