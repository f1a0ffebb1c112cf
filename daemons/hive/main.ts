#!/usr/bin/env node
import { UsageError, intFlag, runDaemon, strFlag } from "../../shared/daemon.js";
import { resolvePaths } from "../../shared/paths.js";
import { DEFAULT_KEEP_ALIVE, HIVE_ID_PATTERN } from "../../shared/protocol.js";
import { createHive } from "./app.js";

const HELP = `Usage: rbee-hive [options]

One per machine: the model catalog, downloads, device detection; spawns and
supervises llm-worker-rbee workers and serves infer/embed jobs on them.

Options:
  --port N                  port to listen on (default 9000; 0 picks a free one)
  --host ADDR               address to bind (default 127.0.0.1; others need a token)
  --hive-id ID              this hive's id (default localhost)
  --queen-url URL           the queen to send heartbeats to (none: no heartbeats)
  --heartbeat-interval S    seconds between heartbeats (default 2)
  --keep-alive S            seconds a worker stays loaded after its last job
                            (default 300; -1 forever, 0 unload when idle)
  --worker-port-start N     first port tried for workers (default 9001)
  --max-queue N             jobs waiting per worker before QUEUE_FULL (default 64)
  --token-file PATH         read the API token from PATH (else RBEE_TOKEN)
  --log-file PATH           write JSON log lines to PATH instead of stderr
  -h, --help                show this help
  -v, --version             show the version

Environment:
  RBEE_TOKEN                the API token; RBEE_HOME puts config/, models/ and
                            state/ under one folder (else the XDG folders)

Prints "listening <url>" on stdout once it listens. Workers log to
<state>/llm-worker-rbee-<worker_id>.log. SIGTERM, SIGINT or POST /v1/shutdown
stop every worker first. See rbee-hive(8).
`;

/** Seconds as a positive number (fractions allowed, so tests can beat fast). */
function secondsFlag(values: Record<string, unknown>, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+(\.\d+)?$/.test(raw) || n <= 0 || n > 3600) {
    throw new UsageError(`--${name} must be a number of seconds above 0 and at most 3600, got "${String(raw)}".`);
  }
  return n;
}

await runDaemon({
  name: "rbee-hive",
  defaultPort: 9000,
  help: HELP,
  flags: {
    "hive-id": { type: "string" },
    "queen-url": { type: "string" },
    "heartbeat-interval": { type: "string" },
    "keep-alive": { type: "string" },
    "worker-port-start": { type: "string" },
    "max-queue": { type: "string" },
  },
  async create(ctx) {
    const v = ctx.values;
    const hiveId = strFlag(v, "hive-id") ?? "localhost";
    if (!HIVE_ID_PATTERN.test(hiveId)) throw new UsageError(`--hive-id "${hiveId}" is not a hive id (lowercase letters, digits, '.', '_', '-').`);
    const queenUrl = strFlag(v, "queen-url");
    if (queenUrl !== undefined && !/^https?:\/\/[^/\s]+/.test(queenUrl)) throw new UsageError(`--queen-url must be an http:// or https:// URL, got "${queenUrl}".`);
    const hive = createHive({
      hiveId,
      paths: resolvePaths(process.env),
      token: ctx.token,
      logFile: ctx.logFile,
      queenUrl,
      heartbeatIntervalMs: secondsFlag(v, "heartbeat-interval", 2) * 1000,
      keepAlive: intFlag(v, "keep-alive", DEFAULT_KEEP_ALIVE, -1),
      workerPortStart: intFlag(v, "worker-port-start", 9001, 1, 65535),
      maxQueue: intFlag(v, "max-queue", 64, 1),
    });
    return { server: hive.server, afterListen: hive.afterListen, dispose: hive.dispose };
  },
});
