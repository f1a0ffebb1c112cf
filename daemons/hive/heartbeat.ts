import { request } from "undici";
import { sharedAgent } from "../../shared/job-client.js";
import type { Logger } from "../../shared/log.js";

export interface HeartbeatOptions {
  queenUrl: string;
  intervalMs: number;
  token?: string | undefined;
  /** The body of one beat: `{hive_id, url, version, devices, workers, models}`. */
  body: () => Promise<unknown>;
  logger: Logger;
}

/**
 * Beats `POST <queen>/v1/hives/heartbeat` every interval, the first at once (registration). A queen
 * that is away is retried quietly: one log line when it goes away, one when it comes back.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private inFlight = false;
  private again = false;
  private away = false;
  private readonly url: string;
  beats = 0;

  constructor(private readonly options: HeartbeatOptions) {
    this.url = `${options.queenUrl.replace(/\/+$/, "")}/v1/hives/heartbeat`;
  }

  start(): void {
    void this.beat();
  }

  /** Beats soon, off schedule: the worker set changed, so the queen's view should not wait a whole interval. */
  nudge(): void {
    if (this.stopped) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.beat(), 20);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    this.inFlight = true;
    this.again = false;
    try {
      await this.send();
      this.beats++;
      if (this.away) this.options.logger.info("queen_back", `The queen at ${this.options.queenUrl} answers heartbeats again.`);
      this.away = false;
    } catch (err) {
      if (!this.away) this.options.logger.warn("queen_away", `Heartbeat to the queen at ${this.options.queenUrl} failed (${(err as Error).message}); retrying quietly.`);
      this.away = true;
    }
    this.inFlight = false;
    // Scheduled after the beat ends, so a slow queen never piles beats up.
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.again ? 20 : this.options.intervalMs);
  }

  private async send(): Promise<void> {
    const body = JSON.stringify(await this.options.body());
    // The interval rides in a header, keeping the body the contract's: extra beats on changes never shorten it at the queen.
    const headers: Record<string, string> = { "content-type": "application/json", "x-rbee-heartbeat-interval-ms": String(this.options.intervalMs) };
    if (this.options.token) headers["authorization"] = `Bearer ${this.options.token}`;
    const res = await request(this.url, {
      method: "POST",
      headers,
      body,
      dispatcher: sharedAgent,
      signal: AbortSignal.timeout(Math.max(1000, this.options.intervalMs)),
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
  }

  dispose(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
