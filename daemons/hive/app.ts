/**
 * rbee-hive: the job server with the hive operations (CONTRACT.md section 4), `/v1/info`,
 * `POST /v1/shutdown`, heartbeats to the queen, keep_alive, and the worker supervisor.
 */
import { RbeeError, invalid } from "../../shared/errors.js";
import { JobServer, type OperationHandlers } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import { checkDownloadSource } from "../../shared/model-source.js";
import type { RbeePaths } from "../../shared/paths.js";
import type { HIVE_OPERATIONS } from "../../shared/protocol.js";
import { VERSION } from "../../shared/version.js";
import { Catalog } from "./catalog.js";
import { Devices, type Device } from "./devices.js";
import { downloadModel } from "./download.js";
import { Heartbeat } from "./heartbeat.js";
import { HiveMetrics } from "./hive-metrics.js";
import { IdleReaper } from "./idle.js";
import { reapOrphanWorkers } from "./orphans.js";
import { serveOnWorker } from "./serve.js";
import { Spawner } from "./spawn.js";
import { Supervisor } from "./supervisor.js";

export type HiveOperation = (typeof HIVE_OPERATIONS)[number] | "infer" | "embed";

export interface HiveOptions {
  hiveId: string;
  paths: RbeePaths;
  token?: string | undefined;
  logFile?: string | undefined;
  queenUrl?: string | undefined;
  heartbeatIntervalMs: number;
  /** seconds a worker stays loaded after its last job by default (-1 forever) */
  keepAlive: number;
  workerPortStart: number;
  maxQueue: number;
  /** The devices (tests inject probes). */
  devices?: Devices;
}

export interface Hive {
  server: JobServer<HiveOperation>;
  supervisor: Supervisor;
  catalog: Catalog;
  info(): Promise<HiveInfo>;
  afterListen(url: string): void;
  dispose(): Promise<void>;
}

export interface HiveInfo {
  hive_id: string;
  url: string;
  version: string;
  devices: Device[];
  workers: unknown[];
  models: unknown[];
}

export function createHive(o: HiveOptions): Hive {
  const logger = new Logger("rbee-hive", o.hiveId, o.logFile);
  const catalog = new Catalog(o.paths.modelsDir);
  const devices = o.devices ?? new Devices();
  let metrics: HiveMetrics | undefined;
  let heartbeat: Heartbeat | undefined;
  const supervisor = new Supervisor({
    hiveId: o.hiveId,
    stateDir: o.paths.stateDir,
    token: o.token,
    workerPortStart: o.workerPortStart,
    maxQueue: o.maxQueue,
    logger,
    onCrash: () => {
      metrics?.crashes.inc();
      heartbeat?.nudge();
    },
    onSpawn: (ok) => {
      metrics?.spawns.inc({ status: ok ? "ok" : "failed" });
      heartbeat?.nudge();
    },
  });
  const spawner = new Spawner({
    catalog,
    supervisor,
    devices: () => devices.list(),
    defaultKeepAlive: o.keepAlive,
    onEvict: () => metrics?.evictions.inc(),
  });
  let url = "";
  const workersJson = () => supervisor.list().map((w) => w.toJSON(o.hiveId));
  const info = async (): Promise<HiveInfo> => {
    const [devs, models] = await Promise.all([devices.list(), catalog.list()]);
    return { hive_id: o.hiveId, url, version: VERSION, devices: devs, workers: workersJson(), models };
  };

  const operations: OperationHandlers<HiveOperation> = {
    worker_spawn: async (op, job) => {
      await spawner.spawn(job, op);
    },
    worker_list: async (_op, job) => {
      job.data("worker_list", { workers: workersJson() });
    },
    worker_stop: async (op, job) => {
      const w = supervisor.get(op.worker_id);
      if (!w) throw new RbeeError("WORKER_NOT_FOUND", `Hive ${o.hiveId} has no worker ${op.worker_id}; see worker_list.`);
      job.narrate("worker_stop", `Stopping worker ${w.id} (${w.model}, pid ${w.pid}).`, { target: w.id });
      await supervisor.stop(w.id, "worker_stop was asked for");
      job.narrate("worker_stopped", `Worker ${w.id} has stopped.`, { target: w.id });
      job.data("worker_stop", { worker_id: w.id, stopped: true });
    },
    model_list: async (_op, job) => {
      job.data("model_list", { models: await catalog.list() });
    },
    model_get: async (op, job) => {
      job.data("model_get", await catalog.get(op.model));
    },
    model_download: async (op, job) => {
      const stopCounting = metrics?.countDownload(job);
      try {
        job.data("model_download", await downloadModel(job, catalog, op.model, op.name));
      } finally {
        stopCounting?.();
      }
    },
    model_delete: async (op, job) => {
      const users = supervisor.list().filter((w) => w.model === op.model);
      if (users.length > 0) {
        const names = users.map((w) => w.id).join(", ");
        throw invalid("model", `${op.model} is in use by worker ${names}; stop ${users.length > 1 ? "them" : "it"} first (worker_stop).`);
      }
      await catalog.delete(op.model);
      job.narrate("model_delete", `Deleted model ${op.model} from the catalog.`, { target: op.model });
      job.data("model_delete", { id: op.model, deleted: true });
    },
    model_import: async (op, job) => {
      job.data("model_import", await catalog.import(job, op.path, op.name));
    },
    infer: (op, job) => serveOnWorker(job, op, ctx),
    embed: (op, job) => serveOnWorker(job, op, ctx),
  };

  const server = new JobServer<HiveOperation>({
    service: "rbee-hive",
    version: VERSION,
    node: o.hiveId,
    operations,
    validate: checkDownloadSource,
    info,
    token: o.token,
    logger,
    routes: (router, srv) => {
      router.post("/v1/shutdown", (c) => {
        c.status = 202;
        c.body = { status: "stopping" };
        // After the 202 is on its way: the shutdown closes this very listener.
        setImmediate(() => srv.requestStop("POST /v1/shutdown"));
      });
    },
  });
  const ctx = { hiveId: o.hiveId, supervisor, spawner, registry: server.registry, maxQueue: o.maxQueue };
  metrics = new HiveMetrics(server.metrics.registry, () => {
    const counts: Record<string, number> = {};
    for (const w of supervisor.list()) counts[w.state] = (counts[w.state] ?? 0) + 1;
    return counts;
  });
  const reaper = new IdleReaper(
    () => supervisor.list().map((w) => w.idleView()),
    (id, idleMs) => {
      const w = supervisor.get(id);
      logger.info("worker_idle", `Worker ${id} was idle ${Math.round(idleMs / 100) / 10} s, past its keep_alive of ${w?.keepAlive ?? "?"} s; stopping it.`, { target: id });
      void supervisor.stop(id, "idle past its keep_alive");
    },
  );
  // A job's end changes worker state (busy slots, a stopped worker): tell the queen now, not at the next beat.
  server.jobEndListeners.add(() => heartbeat?.nudge());

  return {
    server,
    supervisor,
    catalog,
    info,
    afterListen(listenUrl: string) {
      // Reported as bound, 0.0.0.0 included: the queen then uses the address the beat came from.
      url = listenUrl;
      // Probe the GPUs now, so the first spawn and the first heartbeat do not wait for it.
      void devices.detect().catch(() => undefined);
      // Workers of an earlier process of this hive that died without stopping them hold memory for nobody.
      void reapOrphanWorkers(o.hiveId, o.paths.stateDir, logger).catch(() => undefined);
      if (o.queenUrl) {
        heartbeat = new Heartbeat({ queenUrl: o.queenUrl, intervalMs: o.heartbeatIntervalMs, token: o.token, body: info, logger });
        heartbeat.start();
      }
    },
    async dispose() {
      heartbeat?.dispose();
      reaper.dispose();
      await supervisor.dispose();
    },
  };
}
