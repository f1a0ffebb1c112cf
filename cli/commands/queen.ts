import type { CommandContext } from "../context.js";
import { CliError, EXIT, usageError } from "../exit-codes.js";
import { queenClient, queenHealth, resolveQueen, unreachableError } from "../queen.js";
import { readPid, startQueenProcess, stopQueenProcess } from "../queen-process.js";
import { resolvePaths } from "../../shared/paths.js";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

export async function run(ctx: CommandContext): Promise<number> {
  const sub = ctx.args.spec.path[1];
  const flag = ctx.args.flags["queen-url"];
  const target = resolveQueen(typeof flag === "string" ? flag : undefined, ctx.env);
  const client = await queenClient(target.url, ctx.env);
  const pidFile = resolvePaths(ctx.env).pidFile("queen-rbee");
  const say = (human: string, json: object) =>
    ctx.stdout.write(ctx.mode === "json" ? `${JSON.stringify(json)}\n` : `${human}\n`);

  if (sub === "status") {
    const h = await queenHealth(client);
    const pid = await readPid(pidFile);
    if (!h) {
      if (ctx.mode === "json") say("", { url: target.url, status: "down" });
      throw unreachableError(target);
    }
    say(`${h.service} ${h.version} is up at ${target.url}${pid ? ` (pid ${pid})` : ""}.`, { url: target.url, ...h, ...(pid ? { pid } : {}) });
    return EXIT.ok;
  }

  if (sub === "start") {
    const h = await queenHealth(client);
    if (h) {
      say(`${h.service} ${h.version} is already running at ${target.url}.`, { url: target.url, ...h, started: false });
      return EXIT.ok;
    }
    if (!LOOPBACK.has(new URL(target.url).hostname)) throw usageError(`cannot start a queen at ${target.url}: rbee starts queens on this machine only (a loopback URL).`);
    const pid = await startQueenProcess(target.url, ctx.env, ctx.stderr, () => queenHealth(client), false);
    const up = await queenHealth(client);
    const name = up ? `${up.service} ${up.version}` : "queen-rbee";
    say(`${name} started at ${target.url}${pid ? ` (pid ${pid})` : ""}.`, { url: target.url, ...up, started: true, ...(pid ? { pid } : {}) });
    return EXIT.ok;
  }

  const stopped = await stopQueenProcess(ctx.env, ctx.stderr);
  if (stopped.state === "not-running") {
    // A queen that answers without a pid file was not started by this keeper's state folder.
    if (await queenHealth(client)) {
      throw new CliError(EXIT.failed, `A queen answers at ${target.url}, but there is no pid file (${pidFile}); it was not started by rbee with this state folder.`);
    }
    say("queen-rbee is not running.", { url: target.url, stopped: false });
    return EXIT.ok;
  }
  say(`Stopped queen-rbee (pid ${stopped.pid}).`, { url: target.url, stopped: true, pid: stopped.pid });
  return EXIT.ok;
}
