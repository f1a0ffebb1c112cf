import test from "ava";
import { execFile, spawn } from "node:child_process";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import type { HiveConfig } from "../../shared/hives-conf.js";
import { remoteStartScript, shellQuote, sshArgs, sshFailure, sshHint } from "../../daemons/queen/ssh.js";
import { tempDir } from "../_helpers/temp.js";

const run = promisify(execFile);

const hive = (over: Partial<HiveConfig> = {}): HiveConfig => ({ hiveId: "gpu1", hostName: "10.0.0.5", hivePort: 9000, env: {}, line: 1, ...over });

test("shellQuote survives a real sh for hostile strings", async (t) => {
  const samples = ["plain", "with space", "it's", "'", "''", "$(rm -rf /)", "`id`", "a\"b", "back\\slash", "new\nline", "*", "~", "-n", "", "ünïcode", "a;b|c&d"];
  for (const s of samples) {
    const { stdout } = await run("sh", ["-c", `printf %s ${shellQuote(s)}`]);
    t.is(stdout, s, `round trip of ${JSON.stringify(s)}`);
  }
  t.is(shellQuote("rbee-hive"), "rbee-hive");
  t.is(shellQuote("/opt/rbee/bin/rbee-hive"), "/opt/rbee/bin/rbee-hive");
});

test("sshArgs: batch mode, bounded connect, accept-new, port, key, user@host, then -- and one sh -c word", (t) => {
  const args = sshArgs(hive({ user: "ops", port: 2222, identityFile: "/keys/id ed" }), "echo hi");
  t.deepEqual(args.slice(0, 6), ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new"]);
  t.deepEqual(args.slice(6, 8), ["-p", "2222"]);
  t.deepEqual(args.slice(8, 10), ["-i", "/keys/id ed"]);
  t.is(args.at(-3), "ops@10.0.0.5");
  t.is(args.at(-2), "--");
  t.is(args.at(-1), "sh -c 'echo hi'");
  const bare = sshArgs(hive(), "x");
  t.false(bare.includes("-p"));
  t.false(bare.includes("-i"));
  t.is(bare.at(-3), "10.0.0.5");
});

test("the remote start script takes the token on stdin into a 0600 file and keeps it out of argv", async (t) => {
  const dir = await tempDir(t, "rbee-ssh-script-");
  const record = path.join(dir, "argv.txt");
  const fake = path.join(dir, "fake hive");
  // A stand-in rbee-hive: records its arguments and environment, then stays up like a daemon.
  await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${shellQuote(record)}\necho "RBEE_HOME=$RBEE_HOME ODD=$ODD" >> ${shellQuote(record)}\nsleep 30\n`);
  await chmod(fake, 0o755);
  const home = path.join(dir, "home");
  const script = remoteStartScript({
    hiveId: "gpu1", hivePort: 9123, queenUrl: "http://10.0.0.1:8500", binary: fake,
    env: { RBEE_HOME: home, ODD: "it's $HOME" },
  });
  const token = "s3cret-token-value";
  const state = path.join(home, "state");
  const pids: number[] = [];
  t.teardown(() => {
    for (const pid of pids) {
      try {
        process.kill(pid);
      } catch {
        // already gone
      }
    }
  });
  const launch = async (): Promise<number> => {
    const child = spawn("sh", ["-c", script], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(`${token}\n`);
    const code = await new Promise<number | null>((r) => child.once("close", r));
    t.is(code, 0, stderr);
    const pid = Number((await readFile(path.join(state, "rbee-hive-gpu1.pid"), "utf8")).trim());
    pids.push(pid);
    return pid;
  };
  const first = await launch();
  // A second start (the queen saw the hive offline) replaces the hive the pid file names.
  const pid = await launch();
  t.not(pid, first);
  t.throws(() => process.kill(first, 0));
  process.kill(pid, 0);
  const tokenFile = path.join(state, "rbee-hive-gpu1.token");
  t.is((await readFile(tokenFile, "utf8")).trim(), token);
  t.is((await stat(tokenFile)).mode & 0o777, 0o600);
  const argv = (await readFile(record, "utf8")).split("\n");
  t.deepEqual(argv.slice(0, 12), [
    "--port", "9123", "--host", "0.0.0.0", "--hive-id", "gpu1", "--queen-url", "http://10.0.0.1:8500",
    "--token-file", tokenFile, "--log-file", path.join(state, "rbee-hive-gpu1.log"),
  ]);
  t.true(argv.includes(`RBEE_HOME=${home} ODD=it's $HOME`));
  t.false(script.includes(token));
  t.false(argv.join(" ").includes(token));
});

test("the remote start script fails with status 127 and a hint when the binary is missing", async (t) => {
  const script = remoteStartScript({ hiveId: "h", hivePort: 1, queenUrl: "http://q:1", binary: "/nonexistent/rbee-hive", env: { RBEE_HOME: path.join(tmpdir(), "rbee-none") } });
  const err = await run("sh", ["-c", script]).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.is(err?.code, 127);
  t.regex(err?.stderr ?? "", /not found/);
  t.regex(sshHint(hive(), err?.stderr ?? "", 127), /BinaryPath/);
});

test("sshFailure carries ssh's own reason and a hint naming hives.conf keys", (t) => {
  const h = hive({ user: "ops", identityFile: "/k/id" });
  const denied = sshFailure(h, "Could not start rbee-hive", { code: 255, stdout: "", stderr: "Warning: Permanently added '10.0.0.5' (ED25519) to the list of known hosts.\r\nops@10.0.0.5: Permission denied (publickey).\r\n" });
  t.is(denied.code, "SSH_FAILED");
  t.regex(denied.message, /Permission denied \(publickey\)/);
  t.regex(denied.message, /IdentityFile \(\/k\/id\)/);
  t.notRegex(denied.message, /Permanently added/);
  t.regex(sshHint(h, "ssh: Could not resolve hostname nohost: Name or service not known", 255), /HostName/);
  t.regex(sshHint(h, "ssh: connect to host 10.0.0.5 port 22: Connection refused", 255), /Port/);
  t.regex(sshHint(h, "ssh: connect to host 10.0.0.5 port 22: Connection timed out", 255), /network or firewall/);
});
