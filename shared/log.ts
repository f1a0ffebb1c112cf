import { createWriteStream, type WriteStream } from "node:fs";
import type { Job, StoredEvent } from "./job.js";
import type { Level } from "./protocol.js";

export interface LogLine {
  ts: string;
  level: Level;
  service: string;
  node?: string | null;
  action: string;
  human: string;
  job_id?: string;
  correlation_id?: string;
  target?: string | null;
  [key: string]: unknown;
}

/**
 * One JSON line per narration, so a single grep for a correlation id over the state folder
 * follows a request through every daemon. Writes to a file when given one, else to stderr.
 */
export class Logger {
  private out: WriteStream | NodeJS.WriteStream;
  constructor(readonly service: string, readonly node: string | null = null, file?: string) {
    if (file) {
      const stream = createWriteStream(file, { flags: "a" });
      // An unwritable log file must not crash the daemon: say so once and log to stderr instead.
      stream.once("error", (err) => {
        process.stderr.write(`${service}: cannot write the log file ${file} (${err.message}); logging to stderr.\n`);
        this.out = process.stderr;
      });
      this.out = stream;
    } else {
      this.out = process.stderr;
    }
  }

  write(line: Omit<LogLine, "ts" | "service"> & { ts?: string }): void {
    const full = { ts: "", service: this.service, node: this.node, ...line };
    // Set after the spread, so a line passing `ts: undefined` still gets one (and ts stays the first key).
    full.ts = line.ts ?? new Date().toISOString();
    this.out.write(`${JSON.stringify(full)}\n`);
  }

  info(action: string, human: string, extra: Record<string, unknown> = {}): void {
    this.write({ level: "info", action, human, ...extra });
  }
  warn(action: string, human: string, extra: Record<string, unknown> = {}): void {
    this.write({ level: "warn", action, human, ...extra });
  }
  error(action: string, human: string, extra: Record<string, unknown> = {}): void {
    this.write({ level: "error", action, human, ...extra });
  }

  /** Registry hook: logs this daemon's own narration and every job end (relayed events are logged downstream). */
  onJobEvent = (job: Job, stored: StoredEvent): void => {
    const e = stored.event;
    if (e.data.job_id !== job.id) return;
    if (e.event === "narration") {
      const d = e.data;
      this.write({ ts: d.ts, level: d.level, node: d.node, action: d.action, target: d.target, human: d.human, job_id: d.job_id, correlation_id: d.correlation_id, parent_job_id: job.parentJobId });
    } else if (e.event === "end") {
      const d = e.data;
      this.write({
        level: d.status === "failed" ? "error" : "info",
        action: "job_end",
        human: `Job ${job.id} (${job.operation}) ended ${d.status}${d.error ? `: ${d.error.code} ${d.error.message.replace(/\.$/, "")}` : ""}.`,
        job_id: d.job_id,
        correlation_id: d.correlation_id,
        parent_job_id: job.parentJobId,
        status: d.status,
      });
    }
  };

  close(): Promise<void> {
    if (this.out === process.stderr) return Promise.resolve();
    return new Promise((resolve) => (this.out as WriteStream).end(resolve));
  }
}
