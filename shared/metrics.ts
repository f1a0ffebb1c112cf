import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Job } from "./job.js";

/** The metrics every daemon has: process defaults, jobs by operation and status, job durations. */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly jobs: Counter<"operation" | "status">;
  readonly jobDuration: Histogram<"operation" | "status">;

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
    this.jobs = new Counter({
      name: "rbee_jobs_total",
      help: "Jobs by operation and final status.",
      labelNames: ["operation", "status"],
      registers: [this.registry],
    });
    this.jobDuration = new Histogram({
      name: "rbee_job_duration_seconds",
      help: "Time from a job's creation to its end.",
      labelNames: ["operation", "status"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
  }

  onJobEnd = (job: Job): void => {
    this.jobs.inc({ operation: job.operation, status: job.status });
    this.jobDuration.observe({ operation: job.operation, status: job.status }, ((job.finishedAt ?? Date.now()) - job.createdAt) / 1000);
  };
}
