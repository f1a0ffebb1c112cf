import { Counter, Gauge, type Registry } from "prom-client";
import type { Job } from "../../shared/job.js";

/** What matters on a hive (CONTRACT.md section 5): downloads, spawns, crashes, workers by state. */
export class HiveMetrics {
  readonly downloadedBytes: Counter;
  readonly spawns: Counter<"status">;
  readonly crashes: Counter;
  readonly evictions: Counter;

  constructor(registry: Registry, workerStates: () => Record<string, number>) {
    this.downloadedBytes = new Counter({ name: "rbee_hive_download_bytes_total", help: "Model bytes downloaded into the catalog.", registers: [registry] });
    this.spawns = new Counter({ name: "rbee_hive_worker_spawns_total", help: "Worker spawns by outcome (ok, failed).", labelNames: ["status"], registers: [registry] });
    this.crashes = new Counter({ name: "rbee_hive_worker_crashes_total", help: "Workers that exited or stopped answering on their own.", registers: [registry] });
    this.evictions = new Counter({ name: "rbee_hive_worker_evictions_total", help: "Idle workers stopped to make room for a new one.", registers: [registry] });
    new Gauge({
      name: "rbee_hive_workers",
      help: "Workers of this hive by state.",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const counts = workerStates();
        for (const state of ["starting", "ready", "busy", "stopping"]) this.set({ state }, counts[state] ?? 0);
      },
    });
  }

  /** Counts a download job's bytes from its `progress` events (bytes newly done per target). */
  countDownload(job: Job): () => void {
    const done = new Map<string, number>();
    return job.subscribe(job.lastEventId, ({ event }) => {
      if (event.event !== "progress" || event.data.unit !== "bytes" || event.data.job_id !== job.id) return;
      const key = event.data.target ?? "";
      const before = done.get(key);
      // The first event of a resumed download reports the bytes already on disk: not downloaded now.
      if (before !== undefined && event.data.done > before) this.downloadedBytes.inc(event.data.done - before);
      done.set(key, Math.max(before ?? 0, event.data.done));
    });
  }
}
