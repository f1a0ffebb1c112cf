import { Gauge, type Registry } from "prom-client";
import type { JobRegistry } from "../../shared/job-registry.js";
import type { HiveRegistry } from "./hive-registry.js";

/** The queen's own gauges (CONTRACT.md section 5), read from live state at each scrape. */
export function registerQueenMetrics(metrics: Registry, hives: HiveRegistry, jobs: JobRegistry): void {
  new Gauge({
    name: "rbee_queen_hives",
    help: "Known hives by state (online: heartbeats arrive; offline: missed beats or never seen).",
    labelNames: ["state"],
    registers: [metrics],
    collect() {
      const ids = hives.ids();
      const online = ids.filter((id) => hives.online(id)).length;
      this.set({ state: "online" }, online);
      this.set({ state: "offline" }, ids.length - online);
    },
  });
  new Gauge({
    name: "rbee_queen_workers",
    help: "Workers on online hives, from their last heartbeats.",
    registers: [metrics],
    collect() {
      this.set(hives.workerCount());
    },
  });
  new Gauge({
    name: "rbee_queen_queue",
    help: "infer and embed jobs running or waiting in the queen.",
    registers: [metrics],
    collect() {
      this.set(jobs.running().filter((j) => j.operation === "infer" || j.operation === "embed").length);
    },
  });
}
