import { Agent, request } from "undici";
import { RbeeError } from "../../shared/errors.js";
import { JobClient } from "../../shared/job-client.js";
import { ensureToken, readTokenFile, type RbeePaths } from "../../shared/paths.js";
import type { HiveRegistry } from "./hive-registry.js";

/** Toward hives a dead machine must fail fast: a 3 s connect limit instead of the shared 5 s. */
const hiveAgent = new Agent({ keepAliveTimeout: 30_000, bodyTimeout: 60_000, headersTimeout: 30_000, connect: { timeout: 3_000 } });

/**
 * How the queen talks to hives: one JobClient per hive URL, carrying the token hives expect (the
 * queen's own, else the config folder's token that remote hives were given).
 */
export class HiveLinks {
  private hiveToken: string | undefined;
  private readonly clients = new Map<string, JobClient>();

  constructor(
    private readonly registry: HiveRegistry,
    private readonly paths: RbeePaths,
    private readonly queenToken: string | undefined,
  ) {
    this.hiveToken = queenToken;
  }

  /** Picks up a token made by an earlier queen for remote hives, so they still accept this one. */
  async init(): Promise<void> {
    this.hiveToken ??= await readTokenFile(this.paths.tokenFile).catch(() => undefined);
  }

  get token(): string | undefined {
    return this.hiveToken;
  }

  /** The token remote hives get: the queen's, else the config folder's (made 0600 when missing). */
  async ensureToken(): Promise<string> {
    if (this.hiveToken === undefined) {
      this.hiveToken = await ensureToken(this.paths);
      this.clients.clear();
    }
    return this.hiveToken;
  }

  /** A job client for the hive's current URL; HIVE_UNREACHABLE when the queen does not know where it is. */
  client(hiveId: string): JobClient {
    const url = this.registry.url(hiveId);
    if (!url) throw new RbeeError("HIVE_UNREACHABLE", `Hive ${hiveId} has not registered yet, so its address is unknown; start it with: rbee hive start -h ${hiveId}.`);
    let c = this.clients.get(url);
    if (!c) {
      c = new JobClient(url, { token: this.hiveToken, unreachableCode: "HIVE_UNREACHABLE", label: `hive ${hiveId}`, dispatcher: hiveAgent });
      this.clients.set(url, c);
    }
    return c;
  }

  /** True when GET /health answers 200 within `timeoutMs`. */
  async healthy(url: string, timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await request(`${url}/health`, { dispatcher: hiveAgent, signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /** POST /v1/shutdown (the hive stops its workers, then itself); false when the hive could not be reached. */
  async shutdown(url: string): Promise<boolean> {
    try {
      const res = await request(`${url}/v1/shutdown`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(this.hiveToken ? { authorization: `Bearer ${this.hiveToken}` } : {}) },
        body: "{}",
        dispatcher: hiveAgent,
        signal: AbortSignal.timeout(5000),
      });
      await res.body.dump();
      return res.statusCode < 300;
    } catch {
      return false;
    }
  }

  async dispose(): Promise<void> {
    this.clients.clear();
  }
}
