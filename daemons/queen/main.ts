#!/usr/bin/env node
import { UsageError, intFlag, runDaemon, strFlag, type DaemonContext } from "../../shared/daemon.js";
import { createQueen } from "./app.js";

const HELP = `Usage: queen-rbee [options]

The rbee orchestrator: keeps the hive registry (hives.conf plus heartbeats), starts hives
(localhost as a child process, others over SSH), places infer and embed jobs on workers,
forwards hive operations, and serves the OpenAI-compatible API.

Options:
  --port N                  port to listen on (default 8500; 0 picks a free port)
  --host ADDR               address to bind (default 127.0.0.1; any other needs a token)
  --heartbeat-timeout N     missed heartbeats before a hive is offline (default 3)
  --job-ttl S               seconds a finished job stays readable (default 600)
  --max-finished-jobs N     finished jobs kept at most (default 1000)
  --advertise-url URL       the URL hives on other machines use to reach this queen
  --token-file PATH         read the token from PATH (else RBEE_TOKEN); needed off loopback
  --log-file PATH           write JSON log lines to PATH instead of stderr
  -h, --help                show this help
  -v, --version             show the version

Environment:
  RBEE_TOKEN                the token every request but GET /health must carry
  RBEE_HOME                 puts config/, models/ and state/ under one folder

Files:
  <config>/hives.conf       the hives this queen can start (see rbee-hives.conf(5))
  <config>/token            made (0600) when a remote hive is started without a queen token
  <state>/queen-rbee.pid    this queen's pid, removed at exit
  <state>/rbee-hive-localhost.log, .pid   the localhost hive this queen runs

See queen-rbee(8).
`;

function advertiseUrl(values: DaemonContext["values"]): string | undefined {
  const raw = strFlag(values, "advertise-url");
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`--advertise-url must be a URL such as http://10.0.0.5:8500, got "${raw}".`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UsageError(`--advertise-url must be an http:// or https:// URL, got "${raw}".`);
  return raw;
}

await runDaemon({
  name: "queen-rbee",
  defaultPort: 8500,
  help: HELP,
  flags: {
    "heartbeat-timeout": { type: "string" },
    "job-ttl": { type: "string" },
    "max-finished-jobs": { type: "string" },
    "advertise-url": { type: "string" },
  },
  async create(ctx) {
    const queen = await createQueen({
      host: ctx.host,
      token: ctx.token,
      advertiseUrl: advertiseUrl(ctx.values),
      heartbeatTimeoutBeats: intFlag(ctx.values, "heartbeat-timeout", 3, 1, 1000),
      jobTtlSeconds: intFlag(ctx.values, "job-ttl", 600, 1),
      maxFinishedJobs: intFlag(ctx.values, "max-finished-jobs", 1000, 1),
      logFile: ctx.logFile,
    }).catch((err: Error) => {
      throw err.name === "RbeeError" ? new UsageError(err.message) : err;
    });
    return { server: queen.server, afterListen: () => queen.afterListen(), dispose: () => queen.dispose() };
  },
});
