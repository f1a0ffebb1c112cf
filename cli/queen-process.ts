import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { binaryCommand } from "../shared/binaries.js";
import { ensureDir, resolvePaths } from "../shared/paths.js";
import { CliError, EXIT } from "./exit-codes.js";
import { StderrSpinner } from "./spinner.js";

const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 20_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // An exited process nobody has reaped yet (a zombie) still takes signals; it is gone all the same.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Guards against a recycled pid: on Linux the process must look like queen-rbee. */
function looksLikeQueen(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return /queen/.test(cmd);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT" || !isAlive(pid);
  }
}

export async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Starts queen-rbee detached (log and pid file in the state folder) and waits until `probe` sees it
 * healthy. A queen that dies first, or never answers, is exit status 3 with the end of its log.
 */
export async function startQueenProcess(
  url: string,
  env: NodeJS.ProcessEnv,
  stderr: NodeJS.WriteStream,
  probe: () => Promise<unknown>,
  /** Whether the success line goes to stderr (auto-start); `rbee queen start` prints its own on stdout. */
  announce = true,
): Promise<number | undefined> {
  const paths = resolvePaths(env);
  await ensureDir(paths.stateDir);
  const logFile = paths.logFile("queen-rbee");
  const pidFile = paths.pidFile("queen-rbee");
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  const host = u.hostname.replace(/^\[|\]$/g, "");
  let bin: { command: string; args: string[] };
  try {
    bin = binaryCommand("queen-rbee");
  } catch (err) {
    throw new CliError(EXIT.unreachable, `Cannot start queen-rbee: ${(err as Error).message}`);
  }
  const spinner = new StderrSpinner(stderr, `Starting queen-rbee on ${url} (log: ${logFile})`);
  const fd = openSync(logFile, "a");
  const child = spawn(bin.command, [...bin.args, "--port", port, "--host", host, "--log-file", logFile], {
    detached: true,
    stdio: ["ignore", fd, fd],
    env,
  });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  child.once("error", () => (exited = -1));
  child.unref();
  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    if (await probe()) break;
    // A queen that lost a start race to another keeper exits, but the winner answers: probe once more.
    if (exited !== undefined && !(await probe())) {
      spinner.stop(false, `queen-rbee exited (status ${exited}) before answering on ${url}.`);
      throw new CliError(EXIT.unreachable, `queen-rbee did not start.${tailNote(logFile)}`, `See ${logFile}.`);
    }
    if (Date.now() > deadline) {
      spinner.stop(false, `queen-rbee did not answer on ${url} within ${START_DEADLINE_MS / 1000} s.`);
      throw new CliError(EXIT.unreachable, `queen-rbee did not become healthy.${tailNote(logFile)}`, `See ${logFile}.`);
    }
    // A refused connection costs next to nothing; the queen listens about 300 ms after its start.
    await sleep(25);
  }
  // The queen may write its own pid file; when it does not, the keeper records the process it started.
  if (exited === undefined && child.pid !== undefined && (await readPid(pidFile)) === undefined) {
    await writeFile(pidFile, `${child.pid}\n`, { mode: 0o600 });
  }
  const pid = (await readPid(pidFile)) ?? child.pid;
  spinner.stop(true, announce ? `queen-rbee is up on ${url}${pid ? ` (pid ${pid})` : ""}.` : "");
  return pid;
}

function tailNote(logFile: string): string {
  const tail = lastLines(logFile, 5);
  return tail ? ` Last log lines:\n${tail}` : "";
}

/** SIGTERM to the pid file's queen, then waits until it is gone; "not-running" when there is none. */
export async function stopQueenProcess(env: NodeJS.ProcessEnv, stderr: NodeJS.WriteStream): Promise<{ pid?: number; state: "stopped" | "not-running" }> {
  const pidFile = resolvePaths(env).pidFile("queen-rbee");
  const pid = await readPid(pidFile);
  if (pid === undefined || !isAlive(pid) || !looksLikeQueen(pid)) {
    await rm(pidFile, { force: true });
    return { state: "not-running" };
  }
  const spinner = new StderrSpinner(stderr, `Stopping queen-rbee (pid ${pid}) and the hives and workers it started`);
  try {
    process.kill(pid, "SIGTERM");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") {
      spinner.stop(false, `Cannot signal pid ${pid}: ${(err as Error).message}`);
      throw new CliError(EXIT.failed, `Cannot stop queen-rbee (pid ${pid}): ${(err as Error).message}`);
    }
  }
  const deadline = Date.now() + STOP_DEADLINE_MS;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      spinner.stop(false, `queen-rbee (pid ${pid}) is still running after ${STOP_DEADLINE_MS / 1000} s.`);
      throw new CliError(EXIT.failed, `queen-rbee (pid ${pid}) did not stop.`, `Try: kill ${pid}`);
    }
    await sleep(100);
  }
  await rm(pidFile, { force: true });
  spinner.stop(true, "");
  return { pid, state: "stopped" };
}
