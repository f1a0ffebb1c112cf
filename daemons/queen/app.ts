import { mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { dirname } from "node:path";
import { isLoopback } from "../../shared/daemon.js";
import { RBEE_TINY_ID } from "../../shared/rbee-tiny.js";
import { JobServer, readJson } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import { checkDownloadSource } from "../../shared/model-source.js";
import { ensureDir, resolvePaths, type RbeePaths } from "../../shared/paths.js";
import type { OperationName } from "../../shared/protocol.js";
import { VERSION } from "../../shared/version.js";
import { parseHeartbeat } from "./heartbeat.js";
import { HiveLauncher } from "./hive-launcher.js";
import { HiveLinks } from "./hive-link.js";
import { HiveOps } from "./hive-ops.js";
import { HiveRegistry } from "./hive-registry.js";
import { Inference } from "./inference.js";
import { isOpenAiPath, mountOpenAi, type OpenAiModel } from "./openai.js";
import { openAiErrorBody } from "./openai-errors.js";
import { registerQueenMetrics } from "./queen-metrics.js";

export interface QueenOptions {
  host: string;
  token: string | undefined;
  /** the URL hives on other machines send heartbeats to */
  advertiseUrl?: string | undefined;
  /** missed beats before a hive is offline */
  heartbeatTimeoutBeats: number;
  jobTtlSeconds: number;
  maxFinishedJobs: number;
  logFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** how long hive_start waits for /health and the first heartbeat */
  hiveStartTimeoutMs?: number;
}

export interface Queen {
  server: JobServer;
  registry: HiveRegistry;
  paths: RbeePaths;
  afterListen(): Promise<void>;
  dispose(): Promise<void>;
}

const UNSPECIFIED = new Set(["0.0.0.0", "[::]"]);

/** A non-internal IPv4 address of this machine, for a queen bound to 0.0.0.0 without --advertise-url. */
function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

/** The queen: every operation, the hive registry fed by heartbeats, hive launching and placement. */
export async function createQueen(o: QueenOptions): Promise<Queen> {
  const paths = resolvePaths(o.env ?? process.env);
  // The keeper points --log-file into the state folder, which may not exist yet on a fresh machine.
  if (o.logFile) await mkdir(dirname(o.logFile), { recursive: true });
  const logger = new Logger("queen-rbee", null, o.logFile);
  const registry = new HiveRegistry({
    hivesConf: paths.hivesConf,
    timeoutBeats: o.heartbeatTimeoutBeats,
    onChange: (id, state, why) => logger.info(`hive_${state}`, `Hive ${id} is ${state}: ${why}.`, { target: id }),
  });
  await registry.reload();
  const links = new HiveLinks(registry, paths, o.token);
  await links.init();

  // Closures below run after listen, when the server exists and knows its URL.
  const ownUrl = (): string => server.url;
  const localQueenUrl = (): string => {
    const u = new URL(ownUrl());
    if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
    if (u.hostname === "[::]") u.hostname = "[::1]";
    return u.origin;
  };
  const remoteQueenUrl = (): string | undefined => {
    if (o.advertiseUrl) return o.advertiseUrl.replace(/\/+$/, "");
    if (isLoopback(o.host)) return undefined;
    const u = new URL(ownUrl());
    if (UNSPECIFIED.has(u.hostname)) {
      const lan = lanAddress();
      if (!lan) return undefined;
      u.hostname = lan;
    }
    return u.origin;
  };

  const launcher = new HiveLauncher({
    registry, links, paths, logger, token: o.token, localQueenUrl, remoteQueenUrl,
    ...(o.hiveStartTimeoutMs !== undefined ? { startTimeoutMs: o.hiveStartTimeoutMs } : {}),
  });
  const hives = new HiveOps({ registry, links, launcher });
  const inference = new Inference(registry, hives);

  /** Every model an online hive has (catalog or loaded), plus rbee-tiny, which any hive makes. */
  const models = async (): Promise<OpenAiModel[]> => {
    const found = new Map<string, OpenAiModel>([[RBEE_TINY_ID, { id: RBEE_TINY_ID, hives: [] }]]);
    const add = (id: string, hive: string, contextLength?: unknown): void => {
      const m = found.get(id) ?? { id, hives: [] };
      if (!m.hives.includes(hive)) m.hives.push(hive);
      if (typeof contextLength === "number" && m.context_length === undefined) m.context_length = contextLength;
      found.set(id, m);
    };
    for (const view of registry.views()) {
      if (!view.online) continue;
      add(RBEE_TINY_ID, view.hive_id);
      for (const m of view.models) add(m.id, view.hive_id, m["context_length"]);
      for (const w of view.workers) add(w.model, view.hive_id);
    }
    return [...found.values()];
  };

  const server: JobServer<OperationName> = new JobServer<OperationName>({
    service: "queen-rbee",
    version: VERSION,
    token: o.token,
    logger,
    registry: { jobTtlSeconds: o.jobTtlSeconds, maxFinishedJobs: o.maxFinishedJobs },
    validate: checkDownloadSource,
    info: () => ({
      service: "queen-rbee",
      version: VERSION,
      url: ownUrl(),
      advertise_url: remoteQueenUrl() ?? null,
      heartbeat_timeout_beats: o.heartbeatTimeoutBeats,
      hives: registry.ids().map((id) => ({ hive_id: id, state: registry.state(id) })),
      workers: registry.workerCount(),
      running_jobs: server.registry.running().length,
    }),
    operations: {
      status: (_op, job) => hives.status(job),
      hive_list: (_op, job) => hives.list(job),
      hive_status: (op, job) => hives.hiveStatus(op.hive_id, job),
      hive_start: (op, job) => hives.start(op.hive_id, job),
      hive_stop: (op, job) => hives.stop(op.hive_id, job),
      worker_spawn: (op, job) => hives.forward(op, job),
      worker_list: (op, job) => hives.forward(op, job),
      worker_stop: (op, job) => hives.forward(op, job),
      model_list: (op, job) => hives.forward(op, job),
      model_get: (op, job) => hives.forward(op, job),
      model_download: (op, job) => hives.forward(op, job),
      model_delete: (op, job) => hives.forward(op, job),
      model_import: (op, job) => hives.forward(op, job),
      infer: (op, job) => inference.run(op, job),
      embed: (op, job) => inference.run(op, job),
    },
    routes: (router, self) => {
      router.post("/v1/hives/heartbeat", async (ctx) => {
        registry.heartbeat(parseHeartbeat(await readJson(ctx), ctx.get("x-rbee-heartbeat-interval-ms")), ctx.req.socket.remoteAddress);
        ctx.body = { status: "ok" };
      });
      mountOpenAi(router, { server: self, models });
    },
  });
  registerQueenMetrics(server.metrics.registry, registry, server.registry);
  // OpenAI clients read OpenAI's error shape, also for the 401 the auth middleware gives before any route runs.
  server.app.middleware.unshift(async (ctx, next) => {
    if (isOpenAiPath(ctx.path)) ctx.state["formatError"] = openAiErrorBody;
    await next();
  });

  const pidFile = paths.pidFile("queen-rbee");
  return {
    server,
    registry,
    paths,
    async afterListen() {
      await ensureDir(paths.stateDir);
      await writeFile(pidFile, `${process.pid}\n`);
    },
    async dispose() {
      // Cancel first so the DELETE cascade reaches hive and worker jobs while they still run.
      server.registry.cancelAll();
      await launcher.dispose();
      registry.dispose();
      await links.dispose();
      const text = await readFile(pidFile, "utf8").catch(() => "");
      if (text.trim() === String(process.pid)) await unlink(pidFile).catch(() => {});
    },
  };
}
