import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile, unlink, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { untilAborted } from "../../shared/async.js";
import { binaryCommand } from "../../shared/binaries.js";
import { RbeeError } from "../../shared/errors.js";
import { LOCALHOST_HIVE_ID, type HiveConfig } from "../../shared/hives-conf.js";
import type { Job } from "../../shared/job.js";
import type { Logger } from "../../shared/log.js";
import { ensureDir, type RbeePaths } from "../../shared/paths.js";
import { isPortFree } from "../../shared/ports.js";
import type { HiveLinks } from "./hive-link.js";
import type { HiveRegistry } from "./hive-registry.js";
import { remoteStartScript, remoteStopScript, runSsh, sshFailure } from "./ssh.js";

export interface LauncherOptions {
  registry: HiveRegistry;
  links: HiveLinks;
  paths: RbeePaths;
  logger: Logger;
  /** the queen's own token, passed to the localhost hive as RBEE_TOKEN */
  token: string | undefined;
  /** the URL the localhost hive sends heartbeats to */
  localQueenUrl: () => string;
  /** the URL remote hives send heartbeats to; undefined when the queen is only reachable on loopback */
  remoteQueenUrl: () => string | undefined;
  /** how long a start may take until /health answers and the first heartbeat arrives */
  startTimeoutMs?: number;
}

interface Child {
  process: ChildProcess;
  exited: Promise<number | null>;
  pidFile: string;
}

const HIVE = "rbee-hive";

/** Resolves after `ms`, or at once when `signal` aborts (the caller checks why). */
const pause = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

async function tail(file: string, lines = 5): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.trim().split("\n").slice(-lines).join(" / ");
}

/**
 * Starts and stops hives: `localhost` as this queen's child process, every other hive over SSH
 * (hives.conf). A start is done when /health answers and the hive's first heartbeat arrived.
 */
export class HiveLauncher {
  private readonly starting = new Map<string, Promise<void>>();
  private local: Child | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly o: LauncherOptions) {
    this.timeoutMs = o.startTimeoutMs ?? 30_000;
  }

  /** Starts the hive unless it runs; concurrent callers share one start. Narration goes to `job`. */
  async start(hiveId: string, job: Job): Promise<void> {
    if (this.o.registry.online(hiveId)) {
      job.narrate("hive_start", `Hive ${hiveId} is already running at ${this.o.registry.url(hiveId)}.`, { target: hiveId, node: hiveId });
      return;
    }
    const config = this.o.registry.config(hiveId);
    if (!config) throw new RbeeError("HIVE_NOT_FOUND", `Hive ${hiveId} has no entry in ${this.o.paths.hivesConf}, so the queen cannot start it; add a Host ${hiveId} entry.`);
    let pending = this.starting.get(hiveId);
    if (pending) {
      job.narrate("hive_start", `Hive ${hiveId} is already starting; waiting for it.`, { target: hiveId, node: hiveId });
    } else {
      pending = (hiveId === LOCALHOST_HIVE_ID ? this.startLocal(config, job) : this.startRemote(config, job)).finally(() => this.starting.delete(hiveId));
      pending.catch(() => {}); // every waiter gets the error; a start nobody awaits any more must not crash the queen
      this.starting.set(hiveId, pending);
    }
    await untilAborted(pending, job.signal);
  }

  private async startLocal(config: HiveConfig, job: Job): Promise<void> {
    const { paths, registry } = this.o;
    const stale = this.local;
    if (stale) {
      // Our child runs but sends no heartbeats: a hung hive holds its port, so it goes first.
      job.narrate("hive_start", `Hive localhost (pid ${stale.process.pid}) stopped sending heartbeats; stopping it before starting a new one.`, { target: LOCALHOST_HIVE_ID, level: "warn", node: LOCALHOST_HIVE_ID });
      await this.reap(stale, 0);
    }
    await this.stopOrphan(paths.pidFile(`${HIVE}-${LOCALHOST_HIVE_ID}`), job);
    let port = config.hivePort;
    // The built-in default port may be taken (another install); a port set in hives.conf is kept as asked.
    if (config.line === 0 && port !== 0 && !(await isPortFree(port))) {
      job.narrate("hive_start", `Port ${port} is in use, so hive localhost gets a free port (set HivePort in hives.conf to choose one).`, { target: LOCALHOST_HIVE_ID, level: "warn", node: LOCALHOST_HIVE_ID });
      port = 0;
    }
    await ensureDir(paths.stateDir);
    const name = `${HIVE}-${LOCALHOST_HIVE_ID}`;
    const log = paths.logFile(name);
    const pidFile = paths.pidFile(name);
    // BinaryPath and Env of a localhost entry apply to the local process too (rbee-hives.conf(5)).
    const { command, args } = config.binaryPath ? { command: config.binaryPath, args: [] } : binaryCommand(HIVE);
    const env = { ...process.env, ...config.env };
    if (this.o.token) env["RBEE_TOKEN"] = this.o.token;
    else delete env["RBEE_TOKEN"];
    const queenUrl = this.o.localQueenUrl();
    job.narrate("hive_start", `Starting hive localhost as a local process on port ${port === 0 ? "(free)" : port}, reporting to ${queenUrl} (log: ${log}).`, { target: LOCALHOST_HIVE_ID, node: LOCALHOST_HIVE_ID });
    const since = Date.now();
    const fd = openSync(log, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(command, [...args, "--port", String(port), "--hive-id", LOCALHOST_HIVE_ID, "--queen-url", queenUrl, "--log-file", log], { stdio: ["ignore", fd, fd], env });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<number | null>((resolve) => {
      child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null)));
      child.once("error", () => resolve(127));
    });
    const handle: Child = { process: child, exited, pidFile };
    this.local = handle;
    if (child.pid !== undefined) await writeFile(pidFile, `${child.pid}\n`).catch(() => {});
    void exited.then((code) => {
      if (this.local === handle) this.local = undefined;
      void this.removePidFile(pidFile, child.pid);
      registry.markDown(LOCALHOST_HIVE_ID, `its process exited (status ${code})`);
      this.o.logger.info("hive_exit", `Hive localhost (pid ${child.pid}) exited with status ${code}.`, { target: LOCALHOST_HIVE_ID });
    });
    const died = exited.then(async (code) => {
      throw new RbeeError("HIVE_UNREACHABLE", `rbee-hive for localhost exited with status ${code} before registering: ${await tail(log)}`);
    });
    await this.waitOnline(LOCALHOST_HIVE_ID, since, `its log is ${log}`, died);
    job.narrate("hive_start", `Hive localhost is online at ${registry.url(LOCALHOST_HIVE_ID)} (pid ${child.pid}).`, { target: LOCALHOST_HIVE_ID, node: LOCALHOST_HIVE_ID });
  }

  /** A localhost hive left by an earlier queen that died (its pid file, its command line) beats to nobody: stop it. */
  private async stopOrphan(pidFile: string, job: Job): Promise<void> {
    const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
    if (!(pid > 0) || pid === this.local?.process.pid) return;
    const args = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (!args.includes("--hive-id") || !args.includes(LOCALHOST_HIVE_ID)) return;
    job.narrate("hive_start", `Stopping hive localhost (pid ${pid}) left running by an earlier queen.`, { target: LOCALHOST_HIVE_ID, level: "warn", node: LOCALHOST_HIVE_ID });
    try {
      process.kill(pid, "SIGTERM");
      const until = Date.now() + 8000;
      // A zombie has an empty command line: gone for our purpose.
      while (Date.now() < until && (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")) !== "") await pause(100);
    } catch {
      // already gone
    }
  }

  private async startRemote(config: HiveConfig, job: Job): Promise<void> {
    const id = config.hiveId;
    const queenUrl = this.o.remoteQueenUrl();
    if (!queenUrl) {
      throw new RbeeError("INVALID_REQUEST", `Hive ${id} runs on another machine and must reach the queen, but the queen listens on loopback only: restart queen-rbee with --advertise-url http://<this machine>:<port> (or a non-loopback --host with a token).`);
    }
    const token = await this.o.links.ensureToken();
    const dest = `${config.user !== undefined ? `${config.user}@` : ""}${config.hostName}${config.port !== undefined ? ` port ${config.port}` : ""}`;
    job.narrate("hive_start", `Starting hive ${id} over SSH (${dest}) on port ${config.hivePort === 0 ? "(free)" : config.hivePort}, reporting to ${queenUrl}.`, { target: id, node: id });
    const since = Date.now();
    const script = remoteStartScript({ hiveId: id, hivePort: config.hivePort, queenUrl, binary: config.binaryPath, env: config.env });
    const result = await runSsh(config, script, `${token}\n`, { timeoutMs: 30_000 });
    if (result.code !== 0) throw sshFailure(config, "Could not start rbee-hive", result);
    job.narrate("hive_start", `rbee-hive runs on ${config.hostName}; waiting for its first heartbeat.`, { target: id, node: id });
    await this.waitOnline(id, since, `its log is rbee-hive-${id}.log in the state folder on ${config.hostName}; it must reach the queen at ${queenUrl}`);
    job.narrate("hive_start", `Hive ${id} is online at ${this.o.registry.url(id)}.`, { target: id, node: id });
  }

  /** Waits for a heartbeat after `since` and /health; TIMEOUT past the deadline, or `died`'s error first. */
  private async waitOnline(hiveId: string, since: number, where: string, died?: Promise<never>): Promise<void> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new RbeeError("TIMEOUT", `Hive ${hiveId} did not register within ${this.timeoutMs / 1000} s; ${where}.`)), this.timeoutMs);
    const beat = this.o.registry.waitForBeat(hiveId, since, deadline.signal);
    try {
      await (died ? Promise.race([beat, died]) : beat);
      for (;;) {
        const url = this.o.registry.url(hiveId);
        if (url && (await this.o.links.healthy(url))) return;
        if (deadline.signal.aborted) throw deadline.signal.reason;
        await pause(200, deadline.signal);
      }
    } finally {
      clearTimeout(timer);
      // Settle whatever lost the race, so nothing waits or rejects unobserved later.
      if (!deadline.signal.aborted) deadline.abort(new RbeeError("TIMEOUT", "no longer waiting"));
      beat.catch(() => {});
      died?.catch(() => {});
    }
  }

  /** Stops a hive and its workers: HTTP shutdown, then SIGTERM for our child, or ssh for a remote one. */
  async stop(hiveId: string, job?: Job, graceMs = 8000): Promise<void> {
    const { registry, links } = this.o;
    const config = registry.config(hiveId);
    const url = registry.url(hiveId);
    const child = hiveId === LOCALHOST_HIVE_ID ? this.local : undefined;
    const say = (human: string): void => {
      if (job) job.narrate("hive_stop", human, { target: hiveId, node: hiveId });
      else this.o.logger.info("hive_stop", human, { target: hiveId });
    };
    if (!registry.online(hiveId) && !child) {
      say(`Hive ${hiveId} is not running.`);
      return;
    }
    say(`Stopping hive ${hiveId} and its workers.`);
    const asked = url !== undefined && (await links.shutdown(url));
    if (child) {
      await this.reap(child, asked ? graceMs : 0);
    } else if (url && asked) {
      await this.waitDown(url, graceMs);
    } else if (config && hiveId !== LOCALHOST_HIVE_ID) {
      const result = await runSsh(config, remoteStopScript(hiveId, config.env), "", { timeoutMs: 15_000 });
      if (result.code !== 0) throw sshFailure(config, "Could not stop rbee-hive", result);
    }
    registry.markDown(hiveId, "stopped by the queen");
    say(`Hive ${hiveId} stopped.`);
  }

  /** Waits for our child to exit after a shutdown request, then SIGTERM, then SIGKILL. */
  private async reap(child: Child, graceMs: number): Promise<void> {
    const within = (ms: number): Promise<boolean> =>
      Promise.race([child.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (graceMs > 0 && (await within(graceMs))) return;
    child.process.kill("SIGTERM");
    if (await within(5000)) return;
    child.process.kill("SIGKILL");
    await within(2000);
  }

  private async waitDown(url: string, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until && (await this.o.links.healthy(url, 1000))) await pause(200);
  }

  private async removePidFile(file: string, pid: number | undefined): Promise<void> {
    const text = await readFile(file, "utf8").catch(() => "");
    if (text.trim() === String(pid)) await unlink(file).catch(() => {});
  }

  /**
   * The localhost hive an earlier queen of this install started (its pid file) that now reports to
   * this queen, as after a queen crash and restart: this queen owns it, so stopping it stops that hive.
   */
  private async adopted(): Promise<number | undefined> {
    const pid = Number((await readFile(this.o.paths.pidFile(`${HIVE}-${LOCALHOST_HIVE_ID}`), "utf8").catch(() => "")).trim());
    if (!(pid > 0) || pid === this.local?.process.pid) return undefined;
    const args = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    const flag = (name: string): string | undefined => args[args.indexOf(name) + 1];
    if (!args.includes("--hive-id") || flag("--hive-id") !== LOCALHOST_HIVE_ID) return undefined;
    return flag("--queen-url") === this.o.localQueenUrl() ? pid : undefined;
  }

  /** Queen shutdown: stops the localhost hive this queen started or took over (and so its workers). */
  async dispose(): Promise<void> {
    // runDaemon exits by force after 10 s: 4 s for a clean stop, then SIGTERM.
    if (this.local) {
      await this.stop(LOCALHOST_HIVE_ID, undefined, 4000).catch(() => {});
      return;
    }
    const pid = await this.adopted().catch(() => undefined);
    if (pid === undefined) return;
    await this.stop(LOCALHOST_HIVE_ID, undefined, 4000).catch(() => {});
    const until = Date.now() + 3000;
    while (Date.now() < until && (await this.adopted()) === pid) await pause(100);
    // Still the same hive (checked again, so a reused pid is never hit): SIGTERM stops it and its workers.
    if ((await this.adopted()) !== pid) return;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // it exited meanwhile
    }
  }
}
