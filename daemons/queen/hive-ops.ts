import { RbeeError } from "../../shared/errors.js";
import { LOCALHOST_HIVE_ID } from "../../shared/hives-conf.js";
import type { EndExtras, Job } from "../../shared/job.js";
import { forward, isConnectionRefused, type ForwardOptions } from "../../shared/job-client.js";
import type { OperationOf } from "../../shared/protocol.js";
import type { HiveLauncher } from "./hive-launcher.js";
import type { HiveLinks } from "./hive-link.js";
import type { HiveRegistry } from "./hive-registry.js";

type HiveOperation = OperationOf<"worker_spawn" | "worker_list" | "worker_stop" | "model_list" | "model_get" | "model_download" | "model_delete" | "model_import">;

export interface HiveOpsDeps {
  registry: HiveRegistry;
  links: HiveLinks;
  launcher: HiveLauncher;
}

function ago(ms: number | undefined): string {
  return ms === undefined ? "it has never sent a heartbeat" : `its last heartbeat was ${Math.round((Date.now() - ms) / 1000)} s ago`;
}

/** The queen's own operations on hives (status, hive_*) and the forwarding of hive operations. */
export class HiveOps {
  constructor(private readonly d: HiveOpsDeps) {}

  private async known(hiveId: string): Promise<void> {
    await this.d.registry.reload();
    if (!this.d.registry.known(hiveId)) {
      throw new RbeeError("HIVE_NOT_FOUND", `No hive ${hiveId}: it is not in hives.conf and has never registered (see rbee hive list).`);
    }
  }

  /**
   * Makes sure the hive can take a job: localhost is started when it is not running (it is this
   * queen's to run); any other offline hive fails HIVE_UNREACHABLE at once.
   */
  async ensureOnline(hiveId: string, job: Job): Promise<void> {
    const { registry } = this.d;
    if (registry.online(hiveId)) return;
    if (hiveId === LOCALHOST_HIVE_ID) {
      job.narrate("hive_autostart", "Hive localhost is not running; the queen starts it.", { target: hiveId });
      await this.d.launcher.start(hiveId, job);
      return;
    }
    throw new RbeeError("HIVE_UNREACHABLE", `Hive ${hiveId} is offline (${ago(registry.lastSeen(hiveId))}); start it with: rbee hive start -h ${hiveId}.`);
  }

  /** Runs a hive operation on the hive named by hive_id; its events nest under the queen job. */
  async forward(op: HiveOperation, job: Job): Promise<EndExtras> {
    await this.known(op.hive_id);
    await this.ensureOnline(op.hive_id, job);
    job.narrate("forward", `Sending ${op.operation} to hive ${op.hive_id}.`, { target: op.hive_id, level: "debug" });
    const extras = await this.send(op.hive_id, job, op);
    if (op.operation === "worker_spawn" || op.operation === "worker_stop") await this.freshView(op.hive_id, job);
    return extras;
  }

  /** Waits (briefly) for the hive's next beat, which it sends at once after a worker change, so a job pinned next sees it. */
  private async freshView(hiveId: string, job: Job): Promise<void> {
    const signal = AbortSignal.any([job.signal, AbortSignal.timeout(3000)]);
    await this.d.registry.waitForBeat(hiveId, Date.now(), signal).catch(() => undefined);
  }

  /** forward() to a hive; a hive that cannot be reached (or is gone mid-job) is marked offline so the next job fails at once. */
  async send(hiveId: string, job: Job, op: object, opts: ForwardOptions = {}): Promise<EndExtras> {
    let created = false;
    const onCreated = (id: string): void => {
      created = true;
      opts.onCreated?.(id);
    };
    try {
      return await forward(job, this.d.links.client(hiveId), op, { ...opts, onCreated });
    } catch (err) {
      if (err instanceof RbeeError && err.code === "HIVE_UNREACHABLE" && (!created || isConnectionRefused(err))) {
        this.d.registry.markDown(hiveId, created ? "it stopped listening while running a job" : "a request to it failed");
      }
      throw err;
    }
  }

  async status(job: Job): Promise<void> {
    await this.d.registry.reload();
    job.data("status", { hives: this.d.registry.ids().map((id) => this.d.registry.status(id)) });
  }

  async list(job: Job): Promise<void> {
    await this.d.registry.reload();
    job.data("hive_list", { hives: this.d.registry.ids().map((id) => this.d.registry.listEntry(id)) });
  }

  async hiveStatus(hiveId: string, job: Job): Promise<void> {
    await this.known(hiveId);
    job.data("hive_status", this.d.registry.status(hiveId));
  }

  async start(hiveId: string, job: Job): Promise<void> {
    await this.known(hiveId);
    await this.d.launcher.start(hiveId, job);
    const s = this.d.registry.status(hiveId);
    job.data("hive_start", { hive_id: hiveId, url: s.url, state: s.state });
  }

  async stop(hiveId: string, job: Job): Promise<void> {
    await this.known(hiveId);
    await this.d.launcher.stop(hiveId, job);
    job.data("hive_stop", { hive_id: hiveId, state: this.d.registry.state(hiveId) });
  }
}
