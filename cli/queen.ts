import { RbeeError } from "../shared/errors.js";
import { JobClient } from "../shared/job-client.js";
import { readToken, resolvePaths } from "../shared/paths.js";
import type { CommandContext } from "./context.js";
import { CliError, EXIT, usageError } from "./exit-codes.js";
import { startQueenProcess } from "./queen-process.js";

export const DEFAULT_QUEEN_PORT = 8500;

export interface QueenTarget {
  url: string;
  /** Neither --queen-url nor RBEE_QUEEN_URL: the keeper may start a queen itself. */
  isDefault: boolean;
  from: "--queen-url" | "RBEE_QUEEN_URL" | "default";
}

export interface Health {
  status: string;
  service: string;
  version: string;
}

/** The code JobClient gives connection failures; told apart from a queen's own answers by `cause`. */
const UNREACHABLE = "HIVE_UNREACHABLE" as const;

/**
 * Where the queen is. RBEE_DEFAULT_QUEEN_PORT moves the default URL's port (tests and side-by-side
 * installs) while keeping it the default, so auto-start still applies.
 */
export function resolveQueen(flag: string | undefined, env: NodeJS.ProcessEnv): QueenTarget {
  const fromEnv = env["RBEE_QUEEN_URL"]?.trim();
  let url: string;
  let from: QueenTarget["from"];
  if (flag !== undefined) [url, from] = [flag, "--queen-url"];
  else if (fromEnv) [url, from] = [fromEnv, "RBEE_QUEEN_URL"];
  else {
    const port = env["RBEE_DEFAULT_QUEEN_PORT"]?.trim() || String(DEFAULT_QUEEN_PORT);
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw usageError(`RBEE_DEFAULT_QUEEN_PORT must be a port number from 1 to 65535, got "${port}".`);
    }
    [url, from] = [`http://127.0.0.1:${port}`, "default"];
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`${from} "${url}" is not a URL (expected http://HOST:PORT).`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`${from} "${url}" must be an http:// or https:// URL.`);
  return { url: url.replace(/\/+$/, ""), isDefault: from === "default", from };
}

export async function queenClient(url: string, env: NodeJS.ProcessEnv): Promise<JobClient> {
  const token = await readToken(resolvePaths(env), env);
  return new JobClient(url, { token, unreachableCode: UNREACHABLE, label: "queen-rbee" });
}

/** True for a failure to reach the queen at all (refused, reset, lost stream), not for an error it answered. */
export function isUnreachable(err: unknown): boolean {
  return err instanceof RbeeError && err.code === UNREACHABLE && (err.cause !== undefined || err.message.startsWith("Lost the event stream"));
}

/** The queen's /health, or undefined when nothing healthy answers within a couple of seconds. */
export async function queenHealth(client: JobClient, timeoutMs = 2000): Promise<Health | undefined> {
  try {
    const h = await client.getJson<Health>("/health", AbortSignal.timeout(timeoutMs));
    return h && h.status === "ok" ? h : undefined;
  } catch {
    return undefined;
  }
}

export const unreachableError = (target: QueenTarget): CliError =>
  new CliError(
    EXIT.unreachable,
    `queen-rbee is not answering at ${target.url} (from ${target.from}).`,
    target.isDefault ? "Start it with: rbee queen start" : "Check the URL, or start that queen.",
  );

/**
 * A client for a queen that answers: the one at the target, or, with the default URL only (and
 * `autoStart`), one the keeper starts in the background first. Anything else is exit status 3.
 */
export async function connectQueen(ctx: CommandContext, autoStart = true): Promise<JobClient> {
  const target = resolveQueen(typeof ctx.args.flags["queen-url"] === "string" ? ctx.args.flags["queen-url"] : undefined, ctx.env);
  const client = await queenClient(target.url, ctx.env);
  const health = await queenHealth(client);
  if (health) {
    if (health.service !== "queen-rbee") throw new CliError(EXIT.unreachable, `${target.url} is ${health.service}, not queen-rbee.`);
    return client;
  }
  // Listing or cancelling jobs of a queen that is not running has nothing to find: no start for those.
  if (!target.isDefault || !autoStart) throw unreachableError(target);
  await startQueenProcess(target.url, ctx.env, ctx.stderr, () => queenHealth(client));
  return client;
}
