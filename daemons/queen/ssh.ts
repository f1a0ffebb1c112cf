import { spawn } from "node:child_process";
import { RbeeError } from "../../shared/errors.js";
import type { HiveConfig } from "../../shared/hives-conf.js";

/** Quotes one argument for a POSIX shell: safe words as they are, anything else in single quotes. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export interface RemoteStart {
  hiveId: string;
  hivePort: number;
  queenUrl: string;
  /** BinaryPath, else `rbee-hive` on the remote PATH */
  binary?: string | undefined;
  env: Record<string, string>;
}

/** Env entries exported first, so they reach the hive and the state-folder lookup below. */
function envLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([name, value]) => `${name}=${shellQuote(value)}; export ${name}`);
}

/** The hive's state folder on its own machine, the way shared/paths.ts finds it there. */
const STATE_DIR = [
  `s="\${RBEE_HOME:+$RBEE_HOME/state}"`,
  `if [ -z "$s" ]; then s="\${XDG_STATE_HOME:-$HOME/.local/state}/rbee"; fi`,
  `mkdir -p "$s" || exit 1`,
];

/**
 * The POSIX sh script that starts a hive on another machine: the token arrives on standard input
 * into a 0600 file (never in an argument list), the hive is started in the background with its
 * output in its log, and a hive that dies at once is reported with its last log lines.
 */
export function remoteStartScript(r: RemoteStart): string {
  const id = r.hiveId;
  const hiveArgs = ["--port", String(r.hivePort), "--host", "0.0.0.0", "--hive-id", id, "--queen-url", r.queenUrl].map(shellQuote).join(" ");
  return [
    "umask 077",
    ...envLines(r.env),
    ...STATE_DIR,
    `b=${shellQuote(r.binary ?? "rbee-hive")}`,
    `command -v "$b" >/dev/null 2>&1 || { echo "$b: not found on $(uname -n) (install rbee there, or set BinaryPath in hives.conf)" >&2; exit 127; }`,
    `f="$s/rbee-hive-${id}.token"; log="$s/rbee-hive-${id}.log"; pf="$s/rbee-hive-${id}.pid"`,
    // The queen saw this hive offline: one still running from an earlier start (beating elsewhere) gives way.
    `if [ -f "$pf" ] && ps -o args= -p "$(cat "$pf")" 2>/dev/null | grep -q -- "--hive-id ${id} "; then p="$(cat "$pf")"; kill "$p"; i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done; fi`,
    `rm -f "$f" && cat > "$f" || exit 1`,
    `( nohup "$b" ${hiveArgs} --token-file "$f" --log-file "$log" >>"$log" 2>&1 </dev/null & echo $! > "$pf" )`,
    "sleep 1",
    `if ! kill -0 "$(cat "$pf")" 2>/dev/null; then echo "rbee-hive exited at once; the end of $log on $(uname -n):" >&2; tail -n 5 "$log" >&2; exit 1; fi`,
  ].join("\n");
}

/** Stops a hive started by remoteStartScript through its pid file (the fallback when HTTP shutdown fails). */
export function remoteStopScript(hiveId: string, env: Record<string, string>): string {
  return [
    ...envLines(env),
    ...STATE_DIR,
    `pf="$s/rbee-hive-${hiveId}.pid"`,
    `if [ -f "$pf" ]; then kill "$(cat "$pf")" 2>/dev/null; rm -f "$pf"; fi`,
  ].join("\n");
}

/** The ssh argument list for one hive: no prompts, a bounded connect, new host keys accepted once. */
export function sshArgs(hive: HiveConfig, script: string): string[] {
  const args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new"];
  if (hive.port !== undefined) args.push("-p", String(hive.port));
  if (hive.identityFile !== undefined) args.push("-i", hive.identityFile, "-o", "IdentitiesOnly=yes");
  args.push(hive.user !== undefined ? `${hive.user}@${hive.hostName}` : hive.hostName);
  // The remote login shell may not be sh; it only has to pass one single-quoted word to sh.
  args.push("--", `sh -c ${shellQuote(script)}`);
  return args;
}

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 64 * 1024;

/** Runs ssh with `input` on its standard input; stops it after `timeoutMs` or on abort. */
export function runSsh(hive: HiveConfig, script: string, input: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", sshArgs(hive, script), { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => void (stdout.length < MAX_OUTPUT && (stdout += d.toString())));
    child.stderr.on("data", (d: Buffer) => void (stderr.length < MAX_OUTPUT && (stderr += d.toString())));
    child.stdin.on("error", () => {}); // ssh may exit before reading its input
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs ?? 30_000);
    const onAbort = (): void => void child.kill("SIGTERM");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      const why = err.code === "ENOENT" ? "the ssh client is not installed on the queen's machine (install openssh-client)" : err.message;
      reject(new RbeeError("SSH_FAILED", `Could not run ssh for hive ${hive.hiveId}: ${why}.`));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What to check for a failure ssh reported, in the words of hives.conf. */
export function sshHint(hive: HiveConfig, stderr: string, code: number | null): string {
  const where = `${hive.user ?? "(your user)"}@${hive.hostName} port ${hive.port ?? 22}`;
  if (/Permission denied/i.test(stderr))
    return `the key was refused: check IdentityFile (${hive.identityFile ?? "ssh's default keys"}) and that its public key is in ~/.ssh/authorized_keys of User ${hive.user ?? "(your user)"} on ${hive.hostName}`;
  if (/Could not resolve hostname|Name or service not known/i.test(stderr)) return `check HostName ${hive.hostName} in hives.conf`;
  if (/Connection refused/i.test(stderr)) return `nothing accepts ssh at ${where}: check HostName and Port, and that sshd runs there`;
  if (/timed out|No route to host|Network is unreachable/i.test(stderr)) return `${hive.hostName} did not answer: check HostName, Port and the network or firewall`;
  if (/Host key verification failed|IDENTIFICATION HAS CHANGED/i.test(stderr)) return `the host key of ${hive.hostName} changed: check it, then fix ~/.ssh/known_hosts`;
  if (/Identity file .* not accessible|no such identity/i.test(stderr)) return `IdentityFile ${hive.identityFile ?? ""} does not exist on the queen's machine`;
  if (code === 127 || /not found/i.test(stderr)) return "install rbee on that machine, or set BinaryPath in hives.conf to where rbee-hive is";
  if (code === 255) return `check HostName, User, Port and IdentityFile of Host ${hive.hiveId} in hives.conf (tried ${where})`;
  return `see the hive's log under its state folder on ${hive.hostName}`;
}

/** ssh's own reason, without the notices it prints on success ("Warning: Permanently added ..."). */
export function sshReason(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !/^Warning: Permanently added/i.test(l));
  return lines.slice(-6).join(" / ") || "no message";
}

/** An SSH_FAILED error carrying ssh's own stderr reason and a hint. */
export function sshFailure(hive: HiveConfig, what: string, result: SshResult): RbeeError {
  const status = result.code === null ? "was stopped" : `exited with status ${result.code}`;
  return new RbeeError("SSH_FAILED", `${what} on hive ${hive.hiveId}: ssh ${status}: ${sshReason(result.stderr)}. Hint: ${sshHint(hive, result.stderr, result.code)}.`);
}
