import { request } from "undici";
import { JobServer } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import type { Job } from "../../shared/job.js";

type FakeOps = "worker_list" | "model_list" | "infer" | "embed";

export interface FakeHiveOptions {
  queenUrl: string;
  hiveId: string;
  intervalMs?: number;
  token?: string;
  /** what the heartbeat reports */
  devices?: unknown[];
  workers?: unknown[];
  models?: unknown[];
}

/** Resolves when the job is cancelled (or ended), so a fake infer can run until DELETE reaches it. */
const cancelled = (job: Job): Promise<void> => new Promise((r) => (job.signal.aborted ? r() : job.signal.addEventListener("abort", () => r(), { once: true })));

/**
 * A stand-in hive in the test process: a real JobServer on port 0 with the hive operations, and
 * heartbeats to the queen at `intervalMs` that the test can pause and resume.
 */
export class FakeHive {
  readonly server: JobServer<FakeOps>;
  private timer: NodeJS.Timeout | undefined;
  beats = 0;
  /** When the latest beat was sent (the queen got it later, if at all). */
  lastBeatSentAt = 0;
  cancelledJobs: string[] = [];

  constructor(readonly o: FakeHiveOptions) {
    const worker_list = async (_op: unknown, job: Job): Promise<void> => {
      job.narrate("worker_list", `Hive ${o.hiveId} lists its workers.`);
      job.data("worker_list", { workers: o.workers ?? [] });
    };
    this.server = new JobServer<FakeOps>({
      service: "rbee-hive",
      version: "0.0.0-fake",
      node: o.hiveId,
      token: o.token,
      logger: new Logger("rbee-hive", o.hiveId, "/dev/null"),
      info: () => ({ hive_id: o.hiveId }),
      operations: {
        worker_list,
        model_list: async (_op, job) => job.data("model_list", { models: o.models ?? [] }),
        infer: async (op, job) => {
          job.narrate("infer", `Fake hive ${o.hiveId} runs infer${op.worker_id ? ` on ${op.worker_id}` : ""}.`);
          if (op.prompt === "forever") {
            job.token("tick");
            await cancelled(job);
            this.cancelledJobs.push(job.id);
            throw job.signal.reason;
          }
          for (let i = 0; i < 3; i++) job.token(` t${i}`);
          return { finish_reason: "length", usage: { prompt_tokens: 1, completion_tokens: 3 } };
        },
        embed: async (_op, job) => job.data("embed", { embeddings: [[0.5]], usage: { prompt_tokens: 1 } }),
      },
    });
  }

  get url(): string {
    return this.server.url;
  }

  async listen(): Promise<this> {
    await this.server.listen(0, "127.0.0.1");
    return this;
  }

  body(): unknown {
    return { hive_id: this.o.hiveId, url: this.url, version: "0.0.0-fake", devices: this.o.devices ?? [], workers: this.o.workers ?? [], models: this.o.models ?? [] };
  }

  async beat(): Promise<number> {
    this.lastBeatSentAt = Date.now();
    const res = await request(`${this.o.queenUrl}/v1/hives/heartbeat`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
      body: JSON.stringify(this.body()),
    });
    await res.body.dump();
    this.beats++;
    return res.statusCode;
  }

  startBeats(): void {
    this.stopBeats();
    void this.beat().catch(() => {});
    this.timer = setInterval(() => void this.beat().catch(() => {}), this.o.intervalMs ?? 100);
  }

  stopBeats(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async close(): Promise<void> {
    this.stopBeats();
    await this.server.close();
  }
}
