import { statSync } from "node:fs";
import { RbeeError } from "../../shared/errors.js";
import { type HiveConfig, HivesConfError, LOCALHOST_HIVE_ID, hiveEntries, loadHivesConf } from "../../shared/hives-conf.js";
import type { Heartbeat, ModelInfo, WorkerInfo, DeviceInfo } from "./heartbeat.js";
import { Inflight, type InflightJob } from "./inflight.js";
import type { HiveView } from "./scheduler.js";

export type HiveState = "online" | "offline";

/** A hive's entry in `status` and `hive_status` (contract section 4). */
export interface HiveStatus {
  hive_id: string;
  url: string | null;
  state: HiveState;
  last_seen: string | null;
  devices: DeviceInfo[];
  workers: WorkerInfo[];
  models: ModelInfo[];
}

/** A hive's entry in `hive_list`: where it is configured and whether it runs. */
export interface HiveListEntry {
  hive_id: string;
  configured: boolean;
  host: string | null;
  hive_port: number | null;
  url: string | null;
  state: HiveState;
  last_seen: string | null;
  version: string | null;
}

interface HiveRecord {
  hiveId: string;
  url?: string;
  version?: string;
  lastSeen?: number;
  gaps: number[];
  /** the interval the hive says it beats at; learned from gaps when it does not say */
  declaredMs?: number;
  devices: DeviceInfo[];
  workers: WorkerInfo[];
  models: ModelInfo[];
  /** set by hive_stop or a dead child: offline at once, until the next beat */
  down: boolean;
}

export interface RegistryClock {
  now(): number;
}

export interface HiveRegistryOptions {
  hivesConf: string;
  /** beats missed before a hive is offline (queen --heartbeat-timeout, default 3) */
  timeoutBeats: number;
  clock?: RegistryClock;
  /** told when a hive changes state (logged by the queen) */
  onChange?: (hiveId: string, state: HiveState, why: string) => void;
}

/** Assumed until two beats have been seen; the hive's default --heartbeat-interval. */
export const DEFAULT_BEAT_MS = 2000;
const GAPS_KEPT = 4;
// A longer gap is a hive that was away, not its interval.
const MAX_LEARNED_GAP_MS = 30_000;
const UNSPECIFIED_HOSTS = new Set(["0.0.0.0", "[::]", "::"]);

/** A file's identity and version, read on the spot (a stat is cheaper than a read and a parse); "none" when absent. */
function fileSignature(file: string): string | undefined {
  try {
    const s = statSync(file, { throwIfNoEntry: false });
    return s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}` : "none";
  } catch {
    return undefined;
  }
}

/**
 * Every hive the queen knows: localhost, the hives.conf entries, and any hive that sent a
 * heartbeat. State comes from heartbeats: `online` while beats arrive, `offline` once
 * `timeoutBeats` beats are missed (plus half a beat of jitter), or never seen.
 */
export class HiveRegistry {
  private configs: HiveConfig[] = [];
  private loadedAt = 0;
  private loadedSig: string | undefined;
  private readonly records = new Map<string, HiveRecord>();
  private readonly inflight = new Inflight();
  private readonly waiters = new Set<(hiveId: string) => void>();
  private readonly lastState = new Map<string, HiveState>();
  private readonly clock: RegistryClock;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: HiveRegistryOptions) {
    this.clock = options.clock ?? Date;
    this.sweeper = setInterval(() => this.sweep(), 250);
    this.sweeper.unref();
  }

  /**
   * Re-reads hives.conf (it may be edited while the queen runs), unless read within `maxAgeMs`
   * (placement of every infer need not touch the disk); a mistake is INVALID_REQUEST naming file:line.
   */
  async reload(maxAgeMs = 0): Promise<void> {
    const now = Date.now();
    if (maxAgeMs > 0 && now - this.loadedAt < maxAgeMs) return;
    // Unchanged since the last good read (same inode, size and times): every status job need not read and parse it.
    const sig = fileSignature(this.options.hivesConf);
    if (sig !== undefined && sig === this.loadedSig) {
      this.loadedAt = now;
      return;
    }
    try {
      this.configs = await loadHivesConf(this.options.hivesConf);
      this.loadedAt = now;
      this.loadedSig = sig;
    } catch (err) {
      if (err instanceof HivesConfError) throw new RbeeError("INVALID_REQUEST", err.message);
      throw err;
    }
  }

  config(hiveId: string): HiveConfig | undefined {
    return hiveEntries(this.configs).find((c) => c.hiveId === hiveId);
  }

  /** Configured hives (localhost first), then hives that registered without an entry. */
  ids(): string[] {
    const ids = hiveEntries(this.configs).map((c) => c.hiveId);
    for (const id of this.records.keys()) if (!ids.includes(id)) ids.push(id);
    return ids;
  }

  known(hiveId: string): boolean {
    return this.config(hiveId) !== undefined || this.records.has(hiveId);
  }

  /** Records a heartbeat; `remote` is the sender's address, used when the hive reports 0.0.0.0. */
  heartbeat(beat: Heartbeat, remote?: string): void {
    const now = this.clock.now();
    const rec = this.records.get(beat.hive_id) ?? { hiveId: beat.hive_id, gaps: [], devices: [], workers: [], models: [], down: false };
    if (rec.lastSeen !== undefined && !rec.down) {
      const gap = now - rec.lastSeen;
      if (gap > 0 && gap <= MAX_LEARNED_GAP_MS) rec.gaps = [...rec.gaps, gap].slice(-GAPS_KEPT);
    }
    rec.lastSeen = now;
    rec.down = false;
    if (beat.interval_ms !== undefined) rec.declaredMs = beat.interval_ms;
    rec.url = this.reachableUrl(beat, remote);
    rec.version = beat.version;
    rec.devices = beat.devices;
    rec.workers = beat.workers;
    rec.models = beat.models;
    this.records.set(beat.hive_id, rec);
    this.sweep();
    for (const wake of this.waiters) wake(beat.hive_id);
  }

  /**
   * Where the queen reaches a hive: a hive from hives.conf at its HostName (the queen reaches it
   * there, its own idea of its name may not resolve here) and the port it reports; any other at
   * the URL it reports, or where the beat came from when that URL says 0.0.0.0.
   */
  private reachableUrl(beat: Heartbeat, remote: string | undefined): string {
    const u = new URL(beat.url);
    const config = beat.hive_id === LOCALHOST_HIVE_ID ? undefined : this.config(beat.hive_id);
    let host: string | undefined = config?.hostName;
    if (host === undefined && UNSPECIFIED_HOSTS.has(u.hostname)) host = remote?.replace(/^::ffff:/, "") ?? "127.0.0.1";
    if (host !== undefined) u.hostname = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
    return u.toString().replace(/\/+$/, "");
  }

  /** The hive's beat interval: the longest of its last few gaps (extra beats only shorten gaps). */
  intervalMs(hiveId: string): number {
    const rec = this.records.get(hiveId);
    if (rec?.declaredMs !== undefined) return rec.declaredMs;
    const gaps = rec?.gaps ?? [];
    return gaps.length > 0 ? Math.max(...gaps) : DEFAULT_BEAT_MS;
  }

  state(hiveId: string): HiveState {
    const rec = this.records.get(hiveId);
    if (!rec || rec.lastSeen === undefined || rec.down) return "offline";
    const limit = (this.options.timeoutBeats + 0.5) * this.intervalMs(hiveId);
    return this.clock.now() - rec.lastSeen > limit ? "offline" : "online";
  }

  online(hiveId: string): boolean {
    return this.state(hiveId) === "online";
  }

  anyOnline(): boolean {
    return this.ids().some((id) => this.online(id));
  }

  lastSeen(hiveId: string): number | undefined {
    return this.records.get(hiveId)?.lastSeen;
  }

  /** Where the queen reaches the hive: its last heartbeat's URL, else hives.conf's HostName and HivePort. */
  url(hiveId: string): string | undefined {
    const rec = this.records.get(hiveId);
    if (rec?.url) return rec.url;
    const c = this.config(hiveId);
    if (!c || c.hivePort === 0) return undefined;
    const host = c.hostName.includes(":") ? `[${c.hostName}]` : c.hostName;
    return `http://${host}:${c.hivePort}`;
  }

  /** Marks a hive offline at once (stopped by the queen, or its process died); the next beat brings it back. */
  markDown(hiveId: string, why: string): void {
    const rec = this.records.get(hiveId);
    if (!rec) return;
    rec.down = true;
    rec.workers = [];
    this.sweep(why);
  }

  /** Resolves at the first heartbeat of `hiveId` received after `since` (ms); rejects on abort. */
  waitForBeat(hiveId: string, since: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      const check = (id: string): void => {
        const seen = this.records.get(hiveId)?.lastSeen;
        if (id === hiveId && seen !== undefined && seen >= since) {
          done();
          resolve();
        }
      };
      const onAbort = (): void => {
        done();
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      this.waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
      check(hiveId);
    });
  }

  /** Counts a queen job on a hive (and worker, once known) until released; placement reads it between beats. */
  begin(hiveId: string, workerId?: string): InflightJob {
    return this.inflight.begin(hiveId, workerId);
  }

  /** What placement sees: every known hive, its last heartbeat, and the queen's in-flight jobs per worker. */
  views(): HiveView[] {
    return this.ids().map((id) => {
      const rec = this.records.get(id);
      const online = this.online(id);
      return {
        hive_id: id,
        online,
        devices: rec?.devices ?? [],
        workers: online ? (rec?.workers ?? []) : [],
        models: rec?.models ?? [],
        inflight: this.inflight.of(id),
      };
    });
  }

  status(hiveId: string): HiveStatus {
    const rec = this.records.get(hiveId);
    const state = this.state(hiveId);
    return {
      hive_id: hiveId,
      url: this.url(hiveId) ?? null,
      state,
      last_seen: rec?.lastSeen !== undefined ? new Date(rec.lastSeen).toISOString() : null,
      devices: rec?.devices ?? [],
      workers: state === "online" ? (rec?.workers ?? []) : [],
      models: rec?.models ?? [],
    };
  }

  listEntry(hiveId: string): HiveListEntry {
    const c = this.config(hiveId);
    const s = this.status(hiveId);
    return {
      hive_id: hiveId,
      configured: c !== undefined,
      host: c?.hostName ?? null,
      hive_port: c?.hivePort ?? null,
      url: s.url,
      state: s.state,
      last_seen: s.last_seen,
      version: this.records.get(hiveId)?.version ?? null,
    };
  }

  /** Workers on online hives, for the queen's metrics. */
  workerCount(): number {
    return this.ids().reduce((n, id) => n + (this.online(id) ? (this.records.get(id)?.workers.length ?? 0) : 0), 0);
  }

  /** Tells `onChange` about state changes (a missed-beats timeout has no event of its own). */
  private sweep(why?: string): void {
    for (const id of this.records.keys()) {
      const state = this.state(id);
      const before = this.lastState.get(id);
      if (before === state) continue;
      this.lastState.set(id, state);
      const reason = why ?? (state === "online" ? "heartbeat received" : `no heartbeat for ${this.options.timeoutBeats} beats of ${this.intervalMs(id)} ms`);
      this.options.onChange?.(id, state, reason);
    }
  }

  dispose(): void {
    clearInterval(this.sweeper);
    this.waiters.clear();
  }
}
