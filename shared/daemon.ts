import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { JobServer } from "./job-server.js";
import { VERSION } from "./version.js";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** A usage error: one clear line on stderr and exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export const COMMON_FLAGS = {
  port: { type: "string" },
  host: { type: "string" },
  "token-file": { type: "string" },
  "log-file": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const satisfies Options;

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "[::1]";
}

/** An integer flag with bounds; a bad value is a usage error naming the flag. */
export function intFlag(values: Values, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^-?\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`}, got "${String(raw)}".`);
  }
  return n;
}

export function strFlag(values: Values, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === "string" ? raw : undefined;
}

export interface DaemonContext {
  values: Values;
  host: string;
  port: number;
  token: string | undefined;
  logFile: string | undefined;
}

export interface DaemonDefinition {
  name: "queen-rbee" | "rbee-hive" | "llm-worker-rbee";
  defaultPort: number;
  /** The --help text; kept in step with the man page. */
  help: string;
  flags: Options;
  /** Builds the server (not yet listening) and whatever it owns. */
  create(ctx: DaemonContext): Promise<{
    // Any subset of operations: runDaemon only listens, logs and closes.
    server: JobServer<any>;
    afterListen?: (url: string) => void | Promise<void>;
    dispose: () => Promise<void>;
  }>;
}

/** The start-up every daemon shares: flags, the loopback/token rule, `listening <url>`, signals. */
export async function runDaemon(def: DaemonDefinition, argv = process.argv.slice(2)): Promise<void> {
  let ctx: DaemonContext;
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...COMMON_FLAGS, ...def.flags }, strict: true, allowPositionals: true });
    if (values["help"]) {
      process.stdout.write(def.help);
      return;
    }
    if (values["version"]) {
      process.stdout.write(`${def.name} ${VERSION}\n`);
      return;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see ${def.name} --help.`);
    const host = strFlag(values, "host") ?? "127.0.0.1";
    const port = intFlag(values, "port", def.defaultPort, 0, 65535);
    const tokenFile = strFlag(values, "token-file");
    let token = process.env["RBEE_TOKEN"]?.trim() || undefined;
    if (tokenFile) {
      token = (await readFile(tokenFile, "utf8").catch((e: Error) => {
        throw new UsageError(`cannot read --token-file ${tokenFile}: ${e.message}`);
      })).trim();
      if (!token) throw new UsageError(`--token-file ${tokenFile} is empty.`);
    }
    if (!isLoopback(host) && !token) {
      throw new UsageError(`refusing to listen on ${host} without a token: set RBEE_TOKEN or pass --token-file PATH (or bind to 127.0.0.1).`);
    }
    ctx = { values, host, port, token, logFile: strFlag(values, "log-file") };
  } catch (err) {
    process.stderr.write(`${def.name}: ${firstLine((err as Error).message)}; see ${def.name} --help.\n`);
    process.exit(2);
  }
  let owned: Awaited<ReturnType<DaemonDefinition["create"]>>;
  try {
    owned = await def.create(ctx);
  } catch (err) {
    process.stderr.write(`${def.name}: ${(err as Error).message}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  }
  let url: string;
  try {
    url = await owned.server.listen(ctx.port, ctx.host);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "EADDRINUSE" ? `port ${ctx.port} on ${ctx.host} is already in use (pick another with --port, or --port 0 for a free one)` : e.message;
    process.stderr.write(`${def.name}: cannot listen: ${why}.\n`);
    await owned.dispose().catch(() => {});
    process.exit(1);
  }
  process.stdout.write(`listening ${url}\n`);
  owned.server.logger.info("listening", `${def.name} ${VERSION} is listening on ${url}.`, { url, pid: process.pid });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    owned.server.logger.info("shutdown", `${def.name} is shutting down (${signal}).`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await owned.dispose().catch((e: Error) => owned.server.logger.error("shutdown", `Shutdown failed: ${e.message}`));
    await owned.server.close();
    await owned.server.logger.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  owned.server.requestStop = (why) => void stop(why);
  await owned.afterListen?.(url);
}

/** Node's argument errors run to several lines; a usage error is one. */
const firstLine = (message: string): string => {
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  if (unknown) return `unknown option ${unknown[1]}`;
  return (message.split("\n")[0] ?? message).replace(/\.$/, "");
};
